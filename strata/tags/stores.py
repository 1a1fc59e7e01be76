"""Which version store a cache gets: one per cache alias and process, chosen by its backend.

The stores themselves live below: :mod:`.versions` (any Django cache), :mod:`.redis_store`
(Django's Redis backend), :mod:`.failover` (Redis behind Sentinel) and :mod:`.pool` (a pool
of Memcached servers). A store is built from ``CACHES`` and ``STRATA``, so it is closed and forgotten when either
changes.
"""

from __future__ import annotations

import threading

from django.core.cache import caches
from django.core.signals import setting_changed

from .failover import SentinelVersionStore
from .pool import PoolVersionStore, is_memcached_pool
from .redis_store import RedisVersionStore
from .versions import VersionStore

__all__ = ["version_store"]


class _Stores:
    """One version store per cache alias and process; ``cache_clear()`` closes and forgets them."""

    def __init__(self) -> None:
        self._stores: dict[str, VersionStore] = {}
        self._lock = threading.Lock()

    def __call__(self, cache_alias: str) -> VersionStore:
        store = self._stores.get(cache_alias)
        if store is None:
            with self._lock:
                store = self._stores.get(cache_alias)
                if store is None:
                    store = self._stores[cache_alias] = _make_store(cache_alias)
        return store

    def cache_clear(self) -> None:
        """Close every store (their near caches' connections) and make new ones on next use."""
        with self._lock:
            stores, self._stores = self._stores, {}
        for store in stores.values():
            store.close()


version_store = _Stores()
"""``version_store(alias)``: the version store for a cache alias (one per process)."""


def _make_store(cache_alias: str) -> VersionStore:
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
    if setting in ("CACHES", "STRATA"):
        version_store.cache_clear()


setting_changed.connect(_forget_stores, dispatch_uid="strata-forget-version-stores")
