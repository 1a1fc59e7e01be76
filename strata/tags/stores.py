"""Which version store a cache gets: one per cache alias and process, chosen by its backend.

The stores themselves live below: :mod:`.versions` (any Django cache), :mod:`.redis_store`
(Django's Redis backend), :mod:`.failover` (Redis behind Sentinel) and :mod:`.pool` (a pool
of Memcached servers). A store is built from ``CACHES``, so it is forgotten when that
setting changes.
"""

from __future__ import annotations

from functools import cache

from django.core.cache import caches
from django.core.signals import setting_changed

from .failover import SentinelVersionStore
from .pool import PoolVersionStore, is_memcached_pool
from .redis_store import RedisVersionStore
from .versions import VersionStore

__all__ = ["version_store"]


@cache
def version_store(cache_alias: str) -> VersionStore:
    """The version store for a cache alias (one per process)."""
    backend = caches[cache_alias]
    if getattr(backend, "epoch_keys", None):  # strata.cache.SentinelRedisCache
        return SentinelVersionStore(cache_alias)  # versions carry the failover epoch
    if _is_django_redis(backend):
        return RedisVersionStore(cache_alias)
    if is_memcached_pool(backend):
        return PoolVersionStore(cache_alias)  # a majority of copies per tag
    return VersionStore(cache_alias)


def _is_django_redis(backend) -> bool:
    inner = getattr(backend, "_cache", None)
    return (
        type(backend).__module__ == "django.core.cache.backends.redis"
        and hasattr(inner, "_get_connection_pool")
        and hasattr(inner, "_serializer")
    )


def _forget_stores(setting: str, **kwargs) -> None:
    if setting == "CACHES":
        version_store.cache_clear()


setting_changed.connect(_forget_stores, dispatch_uid="strata-forget-version-stores")
