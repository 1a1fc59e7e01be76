"""Tag versions on Django's Redis backend, through one Redis client of the store's own.

``redis`` is an optional dependency: it is imported when a store is made for a Redis
cache, never when this module is.
"""

from __future__ import annotations

import pickle

from ..conf import strata_settings
from .changelog import APPEND, IDENTITY_KEY, LOG_KEY, TRIMMED_KEY
from .versions import VALUE_ERRORS, VERSION_PREFIX, VersionStore, new_version

__all__ = ["RedisVersionStore", "redis_loads"]


class RedisVersionStore(VersionStore):
    """The same store, talking to Redis directly for the hot paths.

    Django's Redis backend builds a client object for every call and offers no pipeline
    for ``add``; here one client is kept, a miss stores its artifact and creates its
    versions in one pipelined round trip, and versions are read from the primary
    (the first server), never from a replica that could lag.
    """

    def __init__(self, cache_alias: str):
        super().__init__(cache_alias)
        backend = self.cache
        # Strata's keys are ASCII without spaces: no need for the per-character check.
        self._make_key = backend.make_key
        self._serializer = backend._cache._serializer
        self._pool = backend._cache._get_connection_pool(write=True)
        import redis  # an optional dependency, installed with Django's Redis backend

        self._client = redis.Redis(connection_pool=self._pool)
        self._version_keys: dict[str, str] = {}
        self._append = self._client.register_script(APPEND)
        self._log_keys = [self._make_key(k) for k in (LOG_KEY, IDENTITY_KEY, TRIMMED_KEY)]

    def bump_logged(self, tags):
        """Write the new versions and append the tags to the invalidation log, in one
        script (``strata.tags.changelog``); without the bus, a plain :meth:`bump`."""
        bus = strata_settings().bus
        if not bus.enabled:
            return super().bump_logged(tags)
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
        return True, position.decode() if isinstance(position, bytes) else str(position)

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
        try:
            raw = self._client.mget(keys)
        except Exception as exc:
            raise self._failed("read", exc) from exc
        values = [None if item is None else redis_loads(item) for item in raw]
        names = extra_keys
        versions = dict(zip(tags, values[: len(tags)], strict=True))
        extras = {
            name: value
            for name, value in zip(names, values[len(tags) :], strict=True)
            if value is not None
        }
        return versions, extras

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
        if refused is not None:
            raise refused


_MAX_REMEMBERED_KEYS = 100_000


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
