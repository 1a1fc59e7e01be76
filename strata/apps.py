"""Django app configuration for Strata."""

from django.apps import AppConfig


class StrataConfig(AppConfig):
    """Registers Strata's system checks."""

    name = "strata"
    verbose_name = "Strata"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
