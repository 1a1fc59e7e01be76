from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ormapp", "0003_ticket_code")]

    operations = [
        migrations.CreateModel(
            name="Oddity",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("code", models.CharField(db_column="Code Name", db_index=True, max_length=20)),
                ("label", models.CharField(default="", max_length=50)),
            ],
            options={"db_table": "ormapp_Odd-Table"},
        ),
    ]
