from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ormapp", "0002_close_old_tickets")]

    operations = [
        migrations.AddField(
            model_name="ticket",
            name="code",
            field=models.CharField(db_index=True, default="", max_length=20),
        ),
        migrations.CreateModel(
            name="TicketView",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("ref", models.UUIDField(unique=True)),
                ("status", models.CharField(max_length=20)),
            ],
            options={"db_table": "ormapp_ticket", "managed": False},
        ),
    ]
