"""Tag versions in a pool of Memcached servers: a majority of copies, never one node's word.

Django's Memcached backends spread keys over the pool by hashing, and pymemcache's
``HashClient`` moves the keys of a node it found dead to the other nodes, then puts the
node back after ``dead_timeout`` (60 s) with whatever it still holds. A version bumped
during the outage lands on another node; when the node returns with the old version, an
old artifact stored with that version is a hit again (ABA), and a process that never saw
the node fail never stopped reading the old copy.

Here each tag's version lives on ``R = min(3, servers)`` nodes chosen by rendezvous
hashing over the configured servers (never over the live ones, so a tag's place does
not move), each talked to by a client of this store, outside ``HashClient``'s dead-node
bookkeeping. With the majority ``Q = R // 2 + 1``:

* a bump writes a fresh token to every reachable node of the tag; it is made when ``Q``
  nodes took it;
* a read asks every reachable node of the tag (one ``get_many`` per node, the artifacts
  in the same round trips) and accepts a version only when at least ``Q`` copies
  answered and all of them agree; a missing copy beside a present one disagrees too;
* a disagreement (a node back with an old copy, a node restarted empty, an eviction, a
  bump that reached some nodes only) is settled at once, before the caller reads the
  database: a fresh token goes to every reachable node of the tag, as a bump would.

Any two majorities share a node, so an accepted read includes a copy of the last bump
that was made: an old version would need a majority of the tag's nodes to hold it
together, having all missed that bump. With three or more servers a node may die, be
partitioned from some processes only, or come back with old values, and tags keep being
served; with two, both copies are needed, so while one is out its tags are misses
(``strata.W035``). The limits (``docs/cache-pool.md``): a bump that reached fewer than
``Q`` nodes is a failed bump, kept and retried by its process as on a single server, and
a reader that reaches none of the copies it made may see the old version until then;
nodes that go back in time (memcached's warm restart from a file) and processes
configured with different server lists are not detected.

Artifacts stay where Django's backend puts them: whatever a returning node still holds
is checked against the versions above.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable

from django.core.cache.backends.memcached import BaseMemcachedCache
from django.core.exceptions import ImproperlyConfigured

from ..metrics.registry import CACHE_ERRORS, CIRCUIT_OPEN
from .versions import (
    VALUE_ERRORS,
    VERSION_PREFIX,
    CacheUnavailable,
    VersionStore,
    new_version,
    outage_warnings,
)

__all__ = ["PoolVersionStore", "is_memcached_pool", "pool_servers"]

log = logging.getLogger("strata.tags")

MAX_REPLICAS = 3
# Seconds to wait for a node when the cache's OPTIONS set no timeout: a node that is
# partitioned (not refusing) would otherwise hang the request.
DEFAULT_TIMEOUT = 1.0
_MISSING = object()
_MAX_REMEMBERED_TAGS = 100_000
# Client options that only a pooled client takes.
_POOL_ONLY = ("max_pool_size", "pool_idle_timeout", "lock_generator")


def pool_servers(backend) -> list[str]:
    """The servers of a Django Memcached backend (an empty list for any other cache)."""
    if not isinstance(backend, BaseMemcachedCache):
        return []
    servers = backend._servers  # type: ignore[attr-defined]  # private attribute of Django's memcached backend
    return [s for s in servers if s.strip()]


def is_memcached_pool(backend) -> bool:
    """True for a Django Memcached backend (pymemcache or pylibmc) with several servers."""
    return len(set(pool_servers(backend))) > 1


def _node_name(spec) -> str:
    # HashClient's name for a server, so that its placement of a key maps to our node.
    if isinstance(spec, list | tuple) and len(spec) == 2:
        return f"{spec[0]}:{spec[1]}"
    return str(spec)


def _score(node: str, key: str) -> int:
    digest = hashlib.blake2b(f"{node}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rank(nodes: Iterable[str], key: str, count: int) -> tuple[str, ...]:
    """The ``count`` nodes holding ``key``: highest rendezvous scores first."""
    return tuple(sorted(nodes, key=lambda node: _score(node, key), reverse=True)[:count])


class PoolVersionStore(VersionStore):
    """Versions on a majority of ``min(3, servers)`` nodes of a Memcached pool."""

    def __init__(self, cache_alias: str):
        super().__init__(cache_alias)
        try:
            from pymemcache.client.base import Client, normalize_server_spec
        except ImportError as exc:  # strata.E034 says so at start-up
            raise ImproperlyConfigured(
                f"CACHES[{cache_alias!r}] is a pool of Memcached servers: Strata keeps "
                "versions there with pymemcache; install it (pip install pymemcache)."
            ) from exc
        backend = self.cache
        specs = {}
        for server in pool_servers(backend):
            spec = normalize_server_spec(server.strip())
            specs[_node_name(spec)] = spec
        if len(specs) < 2:
            raise ImproperlyConfigured(
                f"CACHES[{cache_alias!r}] is not a pool of Memcached servers."
            )
        self._client_class = Client
        self._specs = specs
        self.nodes = tuple(specs)
        self.replicas = min(MAX_REPLICAS, len(specs))
        self.quorum = self.replicas // 2 + 1
        self._options = _client_options(backend)
        self._make_key = backend.make_and_validate_key
        self._local = threading.local()
        self._down: dict[str, float] = {}
        self._places: dict[str, tuple[str, tuple[str, ...]]] = {}
        _stores.add(self)

    def _forget_connections(self) -> None:
        """In a forked child: the parent's sockets are not ours to use."""
        self._local = threading.local()

    # -- nodes ---------------------------------------------------------------------------
    def _client(self, node: str):
        """This thread's client for ``node`` (pymemcache clients are not thread-safe)."""
        clients = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        client = clients.get(node)
        if client is None:
            client = clients[node] = self._client_class(self._specs[node], **self._options)
        return client

    def _is_up(self, node: str) -> bool:
        until = self._down.get(node)
        if until is None:
            return True
        if time.monotonic() >= until:
            self._down.pop(node, None)
            CIRCUIT_OPEN.labels(f"{self.cache_alias}@{node}").set(0)
            return True
        return False

    def _node_failed(self, node: str, exc: Exception) -> None:
        self._down[node] = time.monotonic() + self.retry_after
        CACHE_ERRORS.labels(f"{self.cache_alias}@{node}").inc()
        CIRCUIT_OPEN.labels(f"{self.cache_alias}@{node}").set(1)
        outage_warnings.warn(
            f"node:{node}",
            "strata: memcached %s of cache %r unavailable (%r); its copies are skipped",
            node,
            self.cache_alias,
            exc,
        )

    def _call(self, node: str, command, argument):
        """``command(client, argument)`` on one node; ``None`` when the node failed."""
        try:
            return command(self._client(node), argument)
        except VALUE_ERRORS:
            raise
        except Exception as exc:
            self._client(node).close()
            self._node_failed(node, exc)
            return None

    def place(self, tag: str) -> tuple[str, tuple[str, ...]]:
        """``tag``'s version key and the nodes that hold it (best first)."""
        entry = self._places.get(tag)
        if entry is None:
            if len(self._places) > _MAX_REMEMBERED_TAGS:
                self._places.clear()
            key = self._make_key(VERSION_PREFIX + tag)
            entry = self._places[tag] = (key, rank(self.nodes, key, self.replicas))
        return entry

    # -- reads ---------------------------------------------------------------------------
    def get_with(self, tags, extra_keys=()):
        self._available()
        tags = list(dict.fromkeys(tags))
        replies, extras = self._read(tags, list(extra_keys))
        versions, conflicts = {}, []
        for tag in tags:
            answers = replies[tag]
            if len(answers) < self.quorum:
                raise CacheUnavailable(f"fewer than {self.quorum} nodes answered for {tag!r}")
            if all(answer == answers[0] for answer in answers):
                versions[tag] = None if answers[0] is _MISSING else answers[0]
            else:
                conflicts.append(tag)
        if conflicts:
            versions.update(self._settle(conflicts))
        return versions, extras

    def _read(self, tags: list[str], extra_keys: list[str]) -> tuple[dict, dict]:
        """Every reachable copy of each tag, and the artifacts: one ``get_many`` per node."""
        replies: dict[str, list] = {tag: [] for tag in tags}
        batches = self._extras_placement(extra_keys)
        for tag in tags:
            key, nodes = self.place(tag)
            up = [node for node in nodes if self._is_up(node)]
            if len(up) < self.quorum:
                raise CacheUnavailable(f"fewer than {self.quorum} nodes up for {tag!r}")
            for node in up:
                batches.setdefault(node, {})[key] = (tag,)
        extras: dict[str, object] = {}
        for node, names in batches.items():
            found = self._call(node, _get_many, list(names))
            if found is None:
                continue
            for key, name in names.items():
                if isinstance(name, tuple):  # a version: (tag,)
                    replies[name[0]].append(found.get(key, _MISSING))
                elif key in found:
                    extras[name] = found[key]
        if extra_keys and self._hash_client() is None:
            extras.update(self._extras_elsewhere(extra_keys))
        return replies, extras

    def _extras_elsewhere(self, extra_keys: list[str]) -> dict:
        """Artifacts through Django's backend (pylibmc places keys its own way)."""
        try:
            return self.cache.get_many(extra_keys)
        except Exception as exc:
            outage_warnings.warn("pool-read", "strata: could not read artifacts (%r)", exc)
            return {}

    def _hash_client(self):
        """Django's ``HashClient`` when its placement can be asked (pymemcache), else None."""
        client = getattr(self.cache, "_cache", None)
        return client if callable(getattr(client, "_get_client", None)) else None

    def _extras_placement(self, extra_keys: list[str]) -> dict[str, dict]:
        """Artifacts go to the node ``HashClient`` puts them on, in the same round trip."""
        hash_client = self._hash_client()
        placed: dict[str, dict] = {}
        if hash_client is None or not extra_keys:
            return placed
        for name in extra_keys:
            key = self._make_key(name)
            try:
                client = hash_client._get_client(key)
            except Exception:  # every node marked dead: a miss
                continue
            node = _node_name(client.server) if client is not None else None
            if node in self._specs and self._is_up(node):
                placed.setdefault(node, {})[key] = name
        return placed

    def _settle(self, tags: list[str]) -> dict[str, str | None]:
        """Copies disagree: give each tag a fresh token everywhere, as a bump would.

        Safe at any moment (the token was never used, and the caller reads the database
        after this); a tag that did not reach a majority maps to ``None``, whose
        provisional token can then never be created over the copies that exist.
        """
        tokens = {tag: new_version() for tag in tags}
        made = self._write(tokens, _set_many)
        log.info("strata: %d tag(s) had disagreeing copies; gave them new versions", len(tags))
        return {tag: tokens[tag] if tag in made else None for tag in tags}

    # -- writes --------------------------------------------------------------------------
    def _write(self, tokens: dict[str, str], command) -> set[str]:
        """Write ``tokens`` to every reachable node of each tag; the tags that reached Q."""
        batches: dict[str, dict] = {}
        tag_of = {}
        for tag, token in tokens.items():
            key, nodes = self.place(tag)
            tag_of[key] = tag
            for node in nodes:
                if self._is_up(node):
                    batches.setdefault(node, {})[key] = token
        taken: dict[str, int] = dict.fromkeys(tokens, 0)
        for node, values in batches.items():
            refused = self._call(node, command, values)
            if refused is None:
                continue
            for key in values.keys() - set(refused):
                taken[tag_of[key]] += 1
        return {tag for tag, count in taken.items() if count >= self.quorum}

    def bump_logged(self, tags: Iterable[str]) -> tuple[bool, str | None]:
        """Give every tag a new version on a majority of its nodes (after commit); a pool
        keeps no log, so the position is always None.

        A tag that did not reach a majority is a failed bump: kept, made again before
        this process next uses the cache, and logged as an error.
        """
        tokens = {tag: new_version() for tag in set(tags)}
        if not tokens:
            return True, None
        failed = set(tokens) - self._write(tokens, _set_many)
        if failed:
            self._pending |= failed
            self._down_until = time.monotonic() + self.retry_after
            CIRCUIT_OPEN.labels(self.cache_alias).set(1)
            log.error(
                "strata: could not change the versions of %d tag(s) on a majority of "
                "their memcached nodes; retrying when they answer, and artifacts expire "
                "within their timeout meanwhile",
                len(failed),
            )
            return False, None
        return True, None

    def _add(self, tokens: dict[str, str]) -> set[str]:
        """Create versions that are missing (never overwriting); the tags that reached Q."""
        return self._write(tokens, _add_many)

    def complete(self, versions):
        missing = {tag: new_version() for tag, version in versions.items() if version is None}
        if not missing:
            return versions
        self._add(missing)
        # Read back: another process may have created (or a writer bumped) it meanwhile;
        # a token that is not agreed on is one that nothing can match: safe.
        now, _ = self.get_with(list(missing))
        return {**versions, **{tag: now[tag] or new_version() for tag in missing}}

    def _store_now(self, jobs) -> None:
        create = {}
        for _key, _value, _timeout, snapshot, tags in jobs:
            create.update({tag: snapshot[tag] for tag in tags})
        if create:
            self._add(create)
        for key, value, timeout, _snapshot, _tags in jobs:
            try:
                self.cache.set(key, value, timeout)
            except VALUE_ERRORS:
                raise
            except Exception as exc:  # that artifact's node: the versions are elsewhere
                outage_warnings.warn("pool-write", "strata: could not store an artifact (%s)", exc)


_stores: weakref.WeakSet[PoolVersionStore] = weakref.WeakSet()


def _after_fork() -> None:
    # App servers fork workers after the store may have connected (``--preload``); two
    # processes on one socket would read each other's replies.
    for store in list(_stores):
        store._forget_connections()


os.register_at_fork(after_in_child=_after_fork)


def _get_many(client, keys: list[str]) -> dict:
    return client.get_many(keys)


def _set_many(client, values: dict) -> list:
    """Store every value (no expiry: versions must outlive artifacts); the keys refused."""
    return client.set_many(values, expire=0, noreply=False)


def _add_many(client, values: dict) -> list:
    """Store the values whose keys are absent, in one round trip; the keys refused."""
    # pymemcache has no add_many, but its store command takes many keys at once.
    stored = client._store_cmd(b"add", values, 0, False)
    return [key for key, ok in stored.items() if not ok]


def _client_options(backend) -> dict:
    """Options for one node's client: the backend's, with a timeout when it sets none."""
    hash_client = getattr(backend, "_cache", None)
    options = dict(getattr(hash_client, "default_kwargs", {}))
    if not options:  # pylibmc: versions are only read and written by this store
        import pymemcache.serde

        options = {"serde": pymemcache.serde.pickle_serde, "allow_unicode_keys": True}
    for name in _POOL_ONLY:
        options.pop(name, None)
    options["default_noreply"] = False
    for name in ("connect_timeout", "timeout"):
        if options.get(name) is None:
            options[name] = DEFAULT_TIMEOUT
    return options
