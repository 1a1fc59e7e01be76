"""System checks of purges: accelerators without the secret their VCL asks for, or
without a log that carries every writer's changes to them."""

from __future__ import annotations

from django.core.checks import CheckMessage, Tags, Warning, register

from ..bus import bus_log
from ..conf import strata_settings


@register(Tags.compatibility)
def check_purges_carry_the_secret(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Strata's VCL refuses a purge without ``X-Purge-Secret``."""
    conf = strata_settings()
    if not conf.accelerators or conf.purge_secret:
        return []
    return [
        Warning(
            "STRATA['ACCELERATORS'] is set without a PURGE_SECRET: Strata's VCL refuses "
            "purges without the secret, so pages would stay stale until they expire.",
            hint="Set STRATA['PURGE_SECRET'] to the secret in the VCL (strata up exports "
            "STRATA_PURGE_SECRET).",
            id="strata.W019",
        )
    ]


@register(Tags.compatibility)
def check_invalidations_reach_every_accelerator(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Without a log in the version store, only processes that know the accelerators
    purge them: a cron job or a worker with other settings leaves pages stale."""
    conf = strata_settings()
    if not conf.accelerators or not conf.bus.enabled:
        return []
    try:
        log = bus_log(conf.cache_alias)
    except Exception:  # the cache alias itself is wrong: strata.E010 says so
        return []
    if log is not None:
        return []
    return [
        Warning(
            f"The cache {conf.cache_alias!r} keeps no invalidation log, so each process "
            "purges the accelerators itself: a write from a process without "
            "STRATA['ACCELERATORS'] and PURGE_SECRET (a cron job, a Celery worker) leaves "
            "pages stale in Varnish until they expire.",
            hint="Use Django's Redis cache for STRATA['CACHE'] and run `manage.py "
            "strata_purger` (docs/bus.md); or give every process the accelerators, and "
            "set STRATA['BUS'] = {'ENABLED': False} to silence this.",
            id="strata.W045",
        )
    ]
