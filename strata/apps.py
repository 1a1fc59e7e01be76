"""Django app configuration for Strata."""

from django.apps import AppConfig
from django.core.signals import setting_changed


class StrataConfig(AppConfig):
    """Registers Strata's system checks and, when configured, its hooks (queries, timing)."""

    name = "strata"
    verbose_name = "Strata"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
        from .conf import strata_settings

        setting_changed.connect(_forget_settings, dispatch_uid="strata-settings-changed")
        if strata_settings().tracks_reads:
            from django.core.signals import request_finished, request_started

            from .querycache.monkey_patch import install

            install()
            from .edge.purge import install as install_purges

            install_purges()  # purges nothing until STRATA['ACCELERATORS'] names a node
            # Store a request's cache misses in one round trip, after its response.
            request_started.connect(_defer, dispatch_uid="strata-defer-stores")
            request_finished.connect(_flush, dispatch_uid="strata-flush-stores")
        if strata_settings().timing.enabled:
            from .timing.monkey_patch import install as install_timing

            install_timing()  # after the query cache's hooks (either order works)


def _defer(**kwargs) -> None:
    from .tags.versions import defer_stores

    defer_stores()


def _flush(**kwargs) -> None:
    from .tags.versions import flush_deferred_stores

    flush_deferred_stores()


def _forget_settings(setting, **kwargs) -> None:
    if setting in ("STRATA", "CACHES", "DATABASES", "INSTALLED_APPS"):
        from .conf import strata_settings
        from .querycache.schema import clear_schema_cache
        from .tags.versions import version_store

        strata_settings.cache_clear()
        clear_schema_cache()
        version_store.cache_clear()
        if setting == "STRATA":
            from .edge.purge import reset_purger

            reset_purger()
