"""Tag versions in the shared cache: snapshot before a read, compare on use, bump on write.

A version is a random 64-bit token, never a counter: a cache server that restarts,
evicts a key, or a pool node that comes back with old values must never make an old
snapshot match again ("Versions never repeat"). A missing version is created fresh with
``add`` (atomic on Redis, Memcached and the local cache), and an artifact whose snapshot
names a version that is missing or different is a miss.

Every call to the cache server may fail (down, slow, restarting): a failed read is a
miss, logged; a failed bump is logged as an error, and the artifacts' timeout bounds
how long the change can go unseen.

This module holds the store for any Django cache and what every store shares; the stores
for particular backends subclass it (:mod:`.redis_store`, :mod:`.failover`, :mod:`.pool`),
and :func:`strata.tags.stores.version_store` picks one for a cache.
"""

from __future__ import annotations

import logging
import pickle
import secrets
import threading
import time
from collections.abc import Iterable
from typing import TypeGuard

from django.core.cache import caches

from ..metrics.registry import CACHE_ERRORS, CIRCUIT_OPEN
from .keyspace import VERSION_PREFIX
from .recorder import outermost_recorder

__all__ = [
    "VersionStore",
    "VERSION_PREFIX",
    "VALUE_ERRORS",
    "CacheUnavailable",
    "RateLimitedWarnings",
    "outage_warnings",
    "new_version",
    "defer_stores",
    "flush_deferred_stores",
]

log = logging.getLogger("strata.tags")


class CacheUnavailable(Exception):
    """The cache server did not answer; the caller treats it as a miss."""


VALUE_ERRORS = (pickle.PicklingError, TypeError, AttributeError, RecursionError)
"""Raised by pickling a value: the artifact's fault, not an outage of the cache server."""


def new_version() -> str:
    """A version token that has never been used before."""
    return secrets.token_hex(8)


def _all_present(versions: dict[str, str | None]) -> TypeGuard[dict[str, str]]:
    """True when every tag of ``versions`` has a version: it is a full snapshot."""
    return all(version is not None for version in versions.values())


class RateLimitedWarnings:
    """At most one warning per kind every ``interval`` seconds, per process."""

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self.last: dict[str, float] = {}

    def warn(self, kind: str, message: str, *args) -> None:
        """Log ``message % args`` as a warning unless ``kind`` was logged moments ago."""
        now = time.monotonic()
        if now - self.last.get(kind, -self.interval) >= self.interval:
            self.last[kind] = now
            log.warning(message, *args)


outage_warnings = RateLimitedWarnings()
"""The warnings of every version store in this process (each kind at most every 10 s)."""


class VersionStore:
    """Versions of tags, kept in one Django cache (``STRATA['CACHE']``).

    When the cache server fails, the store stays away from it for ``retry_after``
    seconds (every read is a miss at once instead of waiting for a timeout per query),
    and keeps the bumps it could not make to make them first when the server answers.
    """

    retry_after = 2.0

    def __init__(self, cache_alias: str = "default"):
        self.cache_alias = cache_alias
        self._down_until = 0.0
        CIRCUIT_OPEN.labels(cache_alias).set(0)
        self._pending: set[str] = set()

    @property
    def cache(self):
        return caches[self.cache_alias]

    def close(self) -> None:
        """Release what the store holds besides the cache's own connections (none here)."""

    def sync(self, timeout: float = 2.0) -> bool:
        """Wait until this process sees every write the cache made before now (a store
        with a near cache waits for its pushes; this one reads the cache every time)."""
        return True

    # A store with a near cache (RedisVersionStore) keeps values checked against versions
    # in this process until one of those versions changes; this one keeps none.

    def check_token(self) -> int | None:
        """Taken before reading what a value will be checked against (see :meth:`keep_checked`)."""
        return None

    def keep_checked(self, name: str, value, tags, keys, token: int | None, size: int) -> None:
        """Keep ``value``, found valid against the versions of ``tags`` and the values of
        ``keys`` read after ``token``, until any of them changes."""

    def checked(self, name: str):
        """What :meth:`keep_checked` kept under ``name`` and is still valid, or None."""
        return None

    @staticmethod
    def key(tag: str) -> str:
        """The cache key holding ``tag``'s version."""
        return VERSION_PREFIX + tag

    def _failed(self, kind: str, exc: Exception) -> CacheUnavailable:
        self._down_until = time.monotonic() + self.retry_after
        CACHE_ERRORS.labels(self.cache_alias).inc()
        CIRCUIT_OPEN.labels(self.cache_alias).set(1)
        outage_warnings.warn(
            kind,
            "strata: cache %r unavailable (%s); reading from the database",
            self.cache_alias,
            exc,
        )
        return CacheUnavailable(str(exc))

    def _available(self) -> None:
        if self._down_until:
            if time.monotonic() < self._down_until:
                raise CacheUnavailable("the cache failed moments ago")
            self._down_until = 0.0
            CIRCUIT_OPEN.labels(self.cache_alias).set(0)
        if self._pending:
            pending, self._pending = self._pending, set()
            if not self.bump(pending):
                raise CacheUnavailable("the cache still refuses writes")
            log.warning("strata: made %d version change(s) that had failed", len(pending))

    def get_with(self, tags: Iterable[str], extra_keys: Iterable[str] = ()) -> tuple[dict, dict]:
        """One round trip: the current versions of ``tags`` and the values of ``extra_keys``.

        Returns ``(versions, extras)``; a tag without a version maps to ``None``.
        Raises :class:`CacheUnavailable` when the cache server fails.
        """
        self._available()
        tags = list(tags)
        keys = [self.key(t) for t in tags] + list(extra_keys)
        try:
            found = self.cache.get_many(keys)
        except Exception as exc:
            raise self._failed("read", exc) from exc
        versions = {t: found.get(self.key(t)) for t in tags}
        extras = {k: found[k] for k in keys[len(tags) :] if k in found}
        return versions, extras

    def complete(self, versions: dict[str, str | None]) -> dict[str, str]:
        """Create the versions that are missing; return a full snapshot.

        Two processes may create the same version at once: ``add`` keeps the first, and
        the loser reads it back. If the read-back fails, the loser's token is not the
        stored one, so whatever it stores is a miss later: safe.
        """
        if _all_present(versions):
            return versions
        snapshot: dict[str, str] = {}
        try:
            for tag, version in versions.items():
                if version is None:
                    token = new_version()
                    if self.cache.add(self.key(tag), token, timeout=None):
                        version = token
                    else:
                        version = self.cache.get(self.key(tag)) or new_version()
                snapshot[tag] = version
        except Exception as exc:
            raise self._failed("add", exc) from exc
        return snapshot

    @staticmethod
    def provisional(versions: dict[str, str | None]) -> tuple[dict[str, str], list[str]]:
        """A full snapshot without a round trip: fresh tokens stand in for missing versions.

        The tokens are created (``add``, never overwriting) only when the artifact is
        stored, after the read. That is as safe as creating them first: if anything set
        the version in between (a writer's bump, another reader), our token loses and the
        artifact can never match; if nothing did, no write happened in between.
        """
        if _all_present(versions):
            return versions, []
        missing = [tag for tag, version in versions.items() if version is None]
        # While stores wait for the end of a request, every read of that request must
        # propose the same token for a tag, or all but one of its artifacts would lose.
        proposed = getattr(_deferral, "proposed", None)
        if proposed is None:
            outer = outermost_recorder()
            proposed = outer.proposed if outer is not None else None
        snapshot: dict[str, str] = {}
        for tag, version in versions.items():
            if version is None:
                if proposed is None:
                    version = new_version()
                else:
                    version = proposed.setdefault(tag, new_version())
            snapshot[tag] = version
        return snapshot, missing

    def store(
        self,
        key: str,
        value,
        timeout: int,
        snapshot: dict[str, str],
        create: Iterable[str] = (),
        *,
        immediate: bool = False,
    ) -> None:
        """Create the provisional versions ``create`` (if still missing), then store ``value``.

        During a request the store is deferred to the end of the request (after the
        response has gone) and made for all the request's artifacts in one round trip:
        as safe as storing at once, since the snapshot was taken before the read and a
        version created late loses to any write in between. ``immediate`` stores now
        (a page that others are waiting for).
        """
        job = (key, value, timeout, snapshot, tuple(create))
        buffer = None if immediate else getattr(_deferral, "jobs", None)
        if buffer is not None:
            buffer.append((self, job))
            if len(buffer) >= _MAX_DEFERRED:
                flush_deferred_stores()
                defer_stores()  # keep deferring for the rest of the request
            return
        self._store_now([job])

    def _store_now(self, jobs: list) -> None:
        """Store artifacts at once (one round trip per artifact here; pipelined on Redis)."""
        for key, value, timeout, snapshot, create in jobs:
            try:
                for tag in create:
                    self.cache.add(self.key(tag), snapshot[tag], timeout=None)
                self.cache.set(key, value, timeout)
            except VALUE_ERRORS:
                raise  # the value, not the cache server, is at fault
            except Exception as exc:
                raise self._failed("write", exc) from exc

    def snapshot(self, tags: Iterable[str]) -> dict[str, str]:
        """Current versions of ``tags``, creating missing ones: take it *before* reading."""
        versions, _ = self.get_with(tags)
        return self.complete(versions)

    def is_current(self, snapshot: dict[str, str]) -> bool:
        """True when every version in ``snapshot`` is still the current one."""
        current, _ = self.get_with(snapshot)
        return all(current.get(tag) == version for tag, version in snapshot.items())

    def bump(self, tags: Iterable[str]) -> bool:
        """Give every tag a new version (after commit). Returns False when it failed.

        A failed bump is kept and made again before this process next uses the cache.
        """
        return self.bump_logged(tags)[0]

    def bump_logged(self, tags: Iterable[str]) -> tuple[bool, str | None]:
        """:meth:`bump`, and where the change sits in the invalidation log: ``(changed,
        entry id)``; the id is None when the store keeps no log or the bump failed."""
        tags = set(tags)
        values = {self.key(t): new_version() for t in tags}
        if not values:
            return True, None
        error: Exception | None
        try:
            failed = self.cache.set_many(values, timeout=None)
        except Exception as exc:
            failed, error = list(values), exc
        else:
            error = None
        if failed:
            self._bump_failed({t for t in tags if self.key(t) in set(failed)}, error)
            return False, None
        return True, None

    def _bump_failed(self, tags: set[str], error: Exception | None) -> None:
        """Keep ``tags`` to bump again once the cache answers, and say so loudly."""
        self._pending |= tags
        self._down_until = time.monotonic() + self.retry_after
        CACHE_ERRORS.labels(self.cache_alias).inc()
        CIRCUIT_OPEN.labels(self.cache_alias).set(1)
        log.error(
            "strata: could not change the versions of %d tag(s) (%s); retrying when "
            "the cache answers, and artifacts expire within their timeout meanwhile",
            len(tags),
            error or "refused",
        )


_deferral = threading.local()
_MAX_DEFERRED = 200


def defer_stores() -> None:
    """Collect this thread's artifact stores until :func:`flush_deferred_stores` (a request)."""
    if getattr(_deferral, "jobs", None) is None:
        _deferral.jobs = []
        _deferral.proposed = {}


def flush_deferred_stores() -> None:
    """Store what this thread deferred, one round trip per version store, and stop deferring."""
    jobs, _deferral.jobs = getattr(_deferral, "jobs", None), None
    _deferral.proposed = None
    if not jobs:
        return
    by_store: dict[VersionStore, list] = {}
    for store, job in jobs:
        by_store.setdefault(store, []).append(job)
    for store, store_jobs in by_store.items():
        try:
            store._store_now(store_jobs)
        except CacheUnavailable:
            pass  # logged; those artifacts are simply not cached
        except VALUE_ERRORS as exc:
            log.warning("strata: could not store an artifact (%s)", exc)
