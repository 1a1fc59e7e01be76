"""Tag versions on Django's Redis backend, through one Redis client of the store's own.

``redis`` is an optional dependency: it is imported when a store is made for a Redis
cache, never when this module is.
"""

from __future__ import annotations

import logging
import pickle
import weakref

from ..conf import strata_settings
from ..pages.entries import Page, PassMarker
from .changelog import APPEND, IDENTITY_KEY, LOG_KEY, TRIMMED_KEY
from .keyspace import NEAR_CACHE_PREFIXES
from .nearcache import IMMUTABLE_TYPES, NearCache
from .tracking import PushConnection
from .versions import VALUE_ERRORS, VERSION_PREFIX, VersionStore, new_version

log = logging.getLogger("strata.tags")

__all__ = ["RedisVersionStore", "redis_loads"]


class RedisVersionStore(VersionStore):
    """The same store, talking to Redis directly for the hot paths.

    Django's Redis backend builds a client object for every call and offers no pipeline
    for ``add``; here one client is kept, a miss stores its artifact and creates its
    versions in one pipelined round trip, and versions are read from the primary
    (the first server), never from a replica that could lag.

    With ``NEAR_CACHE`` on, what this process read is kept in a :class:`NearCache`
    that Redis's invalidation pushes keep exact, and a read asks Redis only for what the
    copy lacks.
    """

    near_cache_allowed = True
    """False where the primary can change under the push connection (Sentinel)."""

    def __init__(self, cache_alias: str):
        super().__init__(cache_alias)
        backend = self.cache
        # Strata's keys are ASCII without spaces: no need for the per-character check.
        self._make_key = backend.make_key
        self._serializer = backend._cache._serializer
        self._pool = backend._cache._get_connection_pool(write=True)
        import redis  # an optional dependency, installed with Django's Redis backend

        self._client = redis.Redis(connection_pool=self._pool)
        self._redis = redis
        self._version_keys: dict[str, str] = {}
        self._append = self._client.register_script(APPEND)
        self._log_keys = [self._make_key(k) for k in (LOG_KEY, IDENTITY_KEY, TRIMMED_KEY)]
        self._push: PushConnection | None = None
        self.near: NearCache | None = self._near_cache()

    def _near_cache(self) -> NearCache | None:
        """The process's copy of this store's keys, or None where it is off or cannot be exact."""
        conf = strata_settings().near_cache
        if not (conf.enabled and conf.max_bytes and self.near_cache_allowed):
            return None
        prefixes = []
        for name in NEAR_CACHE_PREFIXES:
            prefix = self._make_key(name)
            if self._make_key(name + "x") != prefix + "x":
                log.info("strata: the cache's KEY_FUNCTION hides key prefixes: near cache off")
                return None
            prefixes.append(prefix)
        near = NearCache(conf.max_bytes, redis_loads, (*IMMUTABLE_TYPES, Page, PassMarker))
        pool = self._pool

        def connect():
            options = dict(pool.connection_kwargs, protocol=2, socket_timeout=2.0)
            options.setdefault("socket_connect_timeout", 2.0)
            connection = pool.connection_class(**options)
            connection.connect()
            return connection

        self._push = PushConnection(near, connect, prefixes, conf.silence)
        _near_stores.add(self)
        _sync_after_clear()
        return near

    def check_token(self):
        return None if self.near is None else self.near.token()

    def keep_checked(self, name, value, tags, keys, token, size):
        if self.near is not None:
            depends_on = [self._version_key(tag) for tag in tags]
            depends_on += [self._make_key(key) for key in keys]
            self.near.derive(name, value, depends_on, token, size)

    def checked(self, name):
        return None if self.near is None else self.near.derived(name)

    def sync(self, timeout: float = 2.0) -> bool:
        """Wait until this process's near cache has applied every write Redis made before
        now (after a ``cache.clear()`` in the same process, say). True when it has, or
        when there is no near cache to wait for."""
        if self._push is None:
            return True
        mark = self._version_key(f"strata.sync.{new_version()}")
        try:
            return self._push.barrier(
                mark, lambda key: self._client.set(key, b"1", px=1000), timeout
            )
        except Exception as exc:  # the cache is down: its copies are off anyway
            log.debug("strata: near cache sync failed (%s)", exc)
            return False

    def close(self) -> None:
        """Stop the near cache's push connection (the store is being replaced)."""
        if self._push is not None:
            self._push.stop()

    def bump_logged(self, tags):
        """Write the new versions and append the tags to the invalidation log, in one
        script (``strata.tags.changelog``); without the bus, a plain :meth:`bump`."""
        bus = strata_settings().bus
        if not bus.enabled:
            try:
                return super().bump_logged(tags)
            finally:
                self._forget_near([self._version_key(tag) for tag in tags])
        tags = sorted(set(tags))
        if not tags:
            return True, None
        dumps = self._serializer.dumps
        keys = self._log_keys + [self._version_key(tag) for tag in tags]
        args = [bus.max_entries, new_version(), " ".join(tags)]
        args += [dumps(new_version()) for _ in tags]
        try:
            position = self._append(keys=keys, args=args, client=self._client)
        except Exception as exc:
            self._bump_failed(set(tags), exc)
            return False, None
        finally:
            self._forget_near(keys[len(self._log_keys) :])
        return True, position.decode() if isinstance(position, bytes) else str(position)

    def complete(self, versions):
        try:
            return super().complete(versions)
        finally:
            self._forget_near([self._version_key(t) for t, v in versions.items() if v is None])

    def _forget_near(self, keys) -> None:
        """This process wrote ``keys``: no copy of them is used from now on, even before
        Redis's push arrives (it may come later than the reply across a network)."""
        if self.near is not None:
            self.near.invalidate(keys)

    def _version_key(self, tag: str) -> str:
        """The Redis key of ``tag``'s version (remembered: a page reads dozens per hit)."""
        key = self._version_keys.get(tag)
        if key is None:
            if len(self._version_keys) > _MAX_REMEMBERED_KEYS:
                self._version_keys.clear()
            key = self._version_keys[tag] = self._make_key(VERSION_PREFIX + tag)
        return key

    def get_with(self, tags, extra_keys=()):
        self._available()
        tags = list(tags)
        extra_keys = list(extra_keys)
        keys = [self._version_key(t) for t in tags]
        keys += [self._make_key(name) for name in extra_keys]
        near = self.near
        if near is None:
            try:
                raw = self._mget(keys)
            except Exception as exc:
                raise self._failed("read", exc) from exc
            values = [None if item is None else redis_loads(item) for item in raw]
        else:
            values = self._read_through(near, keys)
        names = extra_keys
        versions = dict(zip(tags, values[: len(tags)], strict=True))
        extras = {
            name: value
            for name, value in zip(names, values[len(tags) :], strict=True)
            if value is not None
        }
        return versions, extras

    def _read_through(self, near: NearCache, keys: list[str]) -> list:
        """The values of ``keys``: the near cache's copies, and one MGET for the rest."""
        found, missing, token = near.lookup(keys)
        if missing:
            try:
                raw = self._mget(missing)
            except Exception as exc:
                raise self._failed("read", exc) from exc
            found.update(zip(missing, near.fill(token, missing, raw), strict=True))
        return [found[key] for key in keys]

    def _mget(self, keys: list[str]) -> list:
        """``MGET keys`` on a connection of the pool, without redis-py's per-command
        machinery (on every call it costs about twice the round trip on loopback).

        A connection the server dropped (a restart) is replaced once, as redis-py's client
        would do; any other failure is raised.
        """
        command = _pack_mget(keys)
        for attempt in (1, 2):
            connection = self._pool.get_connection()
            try:
                connection.send_packed_command([command], check_health=attempt == 2)
                return connection.read_response()
            except (self._redis.ConnectionError, self._redis.TimeoutError, OSError):
                connection.disconnect()
                if attempt == 2:
                    raise
            except BaseException:
                connection.disconnect()  # a reply may be left unread on it
                raise
            finally:
                self._pool.release(connection)
        raise AssertionError("unreachable")

    def _store_now(self, jobs):
        dumps = self._serializer.dumps
        pipe = self._client.pipeline(transaction=False)
        refused = None
        for key, value, timeout, snapshot, create in jobs:
            try:
                payload = dumps(value)  # an unpicklable value raises here, before any I/O
            except VALUE_ERRORS as exc:
                refused = exc
                continue
            for tag in create:
                pipe.set(self._version_key(tag), dumps(snapshot[tag]), nx=True)
            pipe.set(self._make_key(key), payload, ex=timeout)
        try:
            if len(pipe):
                pipe.execute()
        except Exception as exc:
            raise self._failed("write", exc) from exc
        finally:
            if self.near is not None:
                self.near.invalidate(
                    [self._make_key(job[0]) for job in jobs]
                    + [self._version_key(tag) for job in jobs for tag in job[4]]
                )
        if refused is not None:
            raise refused


_MAX_REMEMBERED_KEYS = 100_000
_near_stores: weakref.WeakSet[RedisVersionStore] = weakref.WeakSet()


def _sync_after_clear() -> None:
    """Make ``cache.clear()`` on Django's Redis cache wait for this process's near caches.

    Redis answers ``FLUSHDB`` before it pushes the flush to the tracking connections, so
    a process that clears the cache and reads at once (a test's setUp, a benchmark) could
    be answered from a copy for a few microseconds. After a clear, each near cache of the
    process waits until it has heard it (:meth:`RedisVersionStore.sync`).
    """
    from django.core.cache.backends.redis import RedisCache

    if getattr(RedisCache.clear, "strata_syncs", False):
        return
    original = RedisCache.clear

    def clear(self):
        try:
            return original(self)
        finally:
            for store in list(_near_stores):
                store.sync()

    clear.strata_syncs = True  # type: ignore[attr-defined]
    RedisCache.clear = clear  # type: ignore[method-assign]


def _pack_mget(keys: list[str]) -> bytes:
    """``MGET`` in RESP, as redis-py would send it (keys are Strata's: text, encoded UTF-8)."""
    parts = [b"*%d\r\n$4\r\nMGET\r\n" % (len(keys) + 1)]
    for key in keys:
        data = key.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def redis_loads(data: bytes):
    """Django's ``RedisSerializer.loads`` without its exception for every pickled value.

    Django stores integers as digits and everything else pickled (protocol 2 and later
    begin with the PROTO opcode, 0x80); trying ``int()`` first costs an exception per
    value, and a page checks dozens of versions per hit.
    """
    if data[:1] == b"\x80":
        return pickle.loads(data)
    try:
        return int(data)
    except ValueError:
        return pickle.loads(data)
