"""A data migration through historical models, before ``Ticket.code`` exists (0003).

Every write here runs with the schema of 0001: a statement that named ``code`` (a
condition column of today's model) would fail on PostgreSQL and abort the migration.
"""

from django.db import migrations


def close_old_tickets(apps, schema_editor):
    Ticket = apps.get_model("ormapp", "Ticket")
    Place = apps.get_model("ormapp", "Place")
    Restaurant = apps.get_model("ormapp", "Restaurant")
    db = schema_editor.connection.alias
    first = Ticket.objects.using(db).create(status="open")
    Ticket.objects.using(db).create(status="stale")
    Ticket.objects.using(db).filter(pk=first.pk).update(status="closed")
    ticket = Ticket.objects.using(db).get(pk=first.pk)
    ticket.status = "archived"
    ticket.save(using=db)
    Ticket.objects.using(db).filter(status="stale").delete()
    Ticket.objects.using(db).all().delete()
    place = Restaurant.objects.using(db).create(name="seed", cuisine="none")
    place.name = "seeded"
    place.save(using=db)
    Restaurant.objects.using(db).filter(pk=place.pk).delete()
    Place.objects.using(db).all().delete()


class Migration(migrations.Migration):
    dependencies = [("ormapp", "0001_initial")]

    operations = [
        migrations.RunPython(close_old_tickets, migrations.RunPython.noop),
        migrations.RunSQL(
            "UPDATE ormapp_ticket SET status = 'open' WHERE status = 'none'",
            migrations.RunSQL.noop,
        ),
    ]
