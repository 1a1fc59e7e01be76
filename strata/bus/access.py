"""Which invalidation log a cache has: one per cache alias and process, or none."""

from __future__ import annotations

from functools import cache

from django.core.signals import setting_changed

from ..conf import strata_settings
from ..tags.redis_store import RedisVersionStore
from ..tags.stores import version_store
from .log import InvalidationLog

__all__ = ["bus_log"]


def bus_log(cache_alias: str | None = None) -> InvalidationLog | None:
    """The invalidation log of ``cache_alias`` (default ``STRATA['CACHE']``); None when
    its version store keeps none (Memcached, a local cache) or ``STRATA['BUS']`` is off."""
    conf = strata_settings()
    if not conf.bus.enabled:
        return None
    return _log_of(cache_alias or conf.cache_alias)


@cache
def _log_of(cache_alias: str) -> InvalidationLog | None:
    store = version_store(cache_alias)
    if not isinstance(store, RedisVersionStore):
        return None
    epoch_keys = getattr(store.cache, "epoch_keys", None)
    return InvalidationLog(store._client, store._make_key, epoch_keys[0] if epoch_keys else None)


def _forget_logs(setting: str, **kwargs) -> None:
    if setting == "CACHES":
        _log_of.cache_clear()


setting_changed.connect(_forget_logs, dispatch_uid="strata-forget-bus-logs")
