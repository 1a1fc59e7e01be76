"""Django app configuration for Strata."""

from django.apps import AppConfig
from django.core.signals import request_finished, request_started, setting_changed

from .edge.purge import reset_purger
from .tags.versions import defer_stores, flush_deferred_stores


class StrataConfig(AppConfig):
    """Registers Strata's system checks and, when configured, its hooks (queries, timing)."""

    name = "strata"
    verbose_name = "Strata"

    def ready(self) -> None:
        from .conf import strata_settings

        _register_checks()

        setting_changed.connect(_forget_purger, dispatch_uid="strata-forget-purger")
        if strata_settings().tracks_reads:
            from .querycache.monkey_patch import install

            install()
            from .edge.tickets import purge_after_invalidations as install_purges

            install_purges()  # purges nothing until STRATA['ACCELERATORS'] names a node
            # Store a request's cache misses in one round trip, after its response.
            request_started.connect(_defer, dispatch_uid="strata-defer-stores")
            request_finished.connect(_flush, dispatch_uid="strata-flush-stores")
        if strata_settings().timing.enabled:
            from .timing.monkey_patch import install as install_timing

            install_timing()  # after the query cache's hooks (either order works)


def _register_checks() -> None:
    """Import each module of system checks: each registers its own (``@register``)."""
    from . import checks, env_checks  # noqa: F401
    from .cache import checks as cache_checks  # noqa: F401
    from .edge import checks as edge_checks  # noqa: F401
    from .pages import checks as pages_checks  # noqa: F401
    from .replicas import checks as replicas_checks  # noqa: F401
    from .timing import checks as timing_checks  # noqa: F401


def _defer(**kwargs) -> None:
    defer_stores()


def _flush(**kwargs) -> None:
    flush_deferred_stores()


def _forget_purger(setting: str, **kwargs) -> None:
    # The purger holds the accelerators and the secret it was made with.
    if setting == "STRATA":
        reset_purger()
