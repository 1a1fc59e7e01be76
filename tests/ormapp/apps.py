"""The test app of ORM shapes."""

from django.apps import AppConfig


class OrmAppConfig(AppConfig):
    """Models for the query cache's tests: inheritance, trees, generic relations, composite keys."""

    name = "tests.ormapp"
    label = "ormapp"
    default_auto_field = "django.db.models.AutoField"
