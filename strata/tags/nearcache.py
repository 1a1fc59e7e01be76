"""A copy of hot keys of the version store in each process, kept exact by Redis's pushes.

A page-cache hit, a warm query and a cached fragment each read a handful of versions and
one value from Redis: a network round trip per request, where the floor is a dictionary
lookup. The near cache keeps what this process read (versions, pages, query results,
fragments) and answers from memory while Redis says the key has not changed.

Redis says so through client-side caching (``CLIENT TRACKING ... BCAST``): one connection
per process is told of every write to Strata's key prefixes. The rule it follows
(``docs/design.md``, "The near cache hears every write before it answers"):

- **Drain before every read.** Before a lookup, the process applies every invalidation
  already delivered to its push connection (a non-blocking read of the socket, not a wait
  for a thread). Redis sends a write's invalidations before it replies to the writer, so on
  one machine a read that starts after a write has returned always misses the old copy;
  between machines the window is the network's one-way delay.
- **A copy is filled only if no invalidation of its key arrived while it was read.** The
  lookup takes a token (the count of invalidations so far) before the read from Redis;
  a key invalidated after the token is not filled.
- **No word, no copy.** The push connection pings Redis; after ``SILENCE`` seconds without
  any answer, or when the connection fails, every copy is dropped and none is used or made
  until the connection is back (a cut that nothing reports is bounded by ``SILENCE``).
- **Bounded in bytes.** The oldest copies go first beyond ``MAX_BYTES``.

Values that nothing mutates (versions, stored pages) are kept as objects; every other value
(query results may hold lists) is kept as the bytes Redis returned and unpickled for each
reader, so no request can change another's copy.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["NearCache", "IMMUTABLE_TYPES"]

IMMUTABLE_TYPES: tuple[type, ...] = (str, int, bytes)
"""Types kept as objects; the version store adds its own immutable types (pages)."""

# Bytes charged to an entry beyond its value and key: the dict slot, the tuple, the ints.
_OVERHEAD = 160
# Invalidations remembered to check fills against (key -> when); older tokens are refused.
_RECENT = 100_000
# Derived names cannot be Redis keys of the cache (those begin with the key prefix).
_DERIVED = "\x00"


class NearCache:
    """Copies of keys read from Redis, for one process.

    ``drain`` applies the invalidations that have arrived (given by the push connection,
    :mod:`strata.tags.tracking`); ``loads`` turns Redis's bytes into a value.

    Besides copies of keys, it keeps *derived* entries: a value computed from several keys
    (a page checked against the versions of its tags), dropped as soon as any of those keys
    changes, so that a page-cache hit is one lookup instead of one per tag.
    """

    def __init__(
        self,
        max_bytes: int,
        loads: Callable[[bytes], Any],
        immutable: tuple[type, ...] = IMMUTABLE_TYPES,
    ) -> None:
        self.max_bytes = max_bytes
        self.loads = loads
        self.immutable = immutable
        self.drain: Callable[[], bool] = lambda: False
        """Applies the delivered invalidations; False when the copies may not be used."""
        self._lock = threading.Lock()
        self._reset()
        self.counters = {
            "hits": 0,
            "misses": 0,
            "fills": 0,
            "refused": 0,
            "invalidated": 0,
            "evicted": 0,
            "dropped": 0,
        }

    def _reset(self) -> None:
        # key -> (value, kept as an object, bytes charged); derived names start with NUL.
        self._entries: OrderedDict[str, tuple[Any, bool, int]] = OrderedDict()
        self._bytes = 0
        self._seq = 0  # invalidation messages applied so far
        # The last invalidation of recently changed keys (key -> seq), oldest first; a
        # token older than the horizon cannot be checked against forgotten ones.
        self._recent: OrderedDict[str, int] = OrderedDict()
        self._horizon = 0
        self._dependents: dict[str, set[str]] = {}  # key -> derived names built on it
        self._depends: dict[str, tuple[str, ...]] = {}  # derived name -> its keys

    # -- readers ------------------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> tuple[dict[str, Any], list[str], int | None]:
        """``(found, missing, token)``: the copies of ``keys``, the keys to read from Redis,
        and the token to :meth:`fill` them with (None: the copies are off, fill nothing)."""
        if not self.drain():
            return {}, list(keys), None
        found: dict[str, Any] = {}
        missing: list[str] = []
        raw = False
        with self._lock:
            entries = self._entries
            for key in keys:
                entry = entries.get(key)
                if entry is None:
                    missing.append(key)
                    continue
                value, is_object, _ = entry
                if is_object:
                    found[key] = value
                else:
                    found[key] = _Raw(value)
                    raw = True
            token = self._seq
            self.counters["hits"] += len(found)
            self.counters["misses"] += len(missing)
        if raw:
            for key, value in found.items():
                if type(value) is _Raw:
                    found[key] = self.loads(value.data)
        return found, missing, token

    def token(self) -> int | None:
        """A token for :meth:`derive` taken now (after draining); None when the copies are off."""
        if not self.drain():
            return None
        return self._seq

    def fill(self, token: int | None, keys: Sequence[str], raw: Sequence[Any]) -> list:
        """Keep what Redis returned for ``keys`` (read after ``token``); their values.

        A key whose invalidation arrived after ``token`` is returned to this reader (it is
        what Redis answered) but not kept: the copy could be older than the write.
        """
        values = [None if data is None else self.loads(data) for data in raw]
        if token is None:
            return values
        usable = self.drain()
        with self._lock:
            for key, data, value in zip(keys, raw, values, strict=True):
                if not usable or self._changed_since(key, token):
                    self.counters["refused"] += 1
                    continue
                size = len(data or b"")
                if value is None or isinstance(value, self.immutable):
                    self._keep(key, value, True, size)
                else:
                    self._keep(key, data, False, size)
        return values

    def derive(
        self, name: str, value: Any, depends_on: Sequence[str], token: int | None, size: int
    ) -> None:
        """Keep ``value``, computed from ``depends_on`` as they were at ``token``, until one
        of them changes. ``size``: the bytes to charge for it."""
        if token is None or not self.drain():
            return
        name = _DERIVED + name
        with self._lock:
            if token < self._horizon or any(
                self._recent.get(key, -1) > token for key in depends_on
            ):
                self.counters["refused"] += 1
                return
            self._forget_derived(name)
            keys = tuple(depends_on)
            for key in keys:
                self._dependents.setdefault(key, set()).add(name)
            self._depends[name] = keys
            self._keep(name, value, True, size)

    def derived(self, name: str) -> Any:
        """The value :meth:`derive` kept under ``name``, if none of its keys changed since."""
        if not self.drain():
            return None
        entry = self._entries.get(_DERIVED + name)
        if entry is None:
            return None
        self.counters["hits"] += 1  # without the lock: a count threads may undercount
        return entry[0]

    # -- the push connection ------------------------------------------------------------

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Redis says ``keys`` changed (None: everything, a flush)."""
        with self._lock:
            self._seq += 1
            if keys is None:
                self._clear()
                return
            seq, recent, _entries = self._seq, self._recent, self._entries
            for key in keys:
                recent[key] = seq
                recent.move_to_end(key)
                if self._remove(key):
                    self.counters["invalidated"] += 1
                for name in self._dependents.pop(key, ()):
                    self._forget_derived(name)
            while len(recent) > _RECENT:
                _, forgotten = recent.popitem(last=False)
                self._horizon = forgotten

    def drop_all(self) -> None:
        """Forget every copy, and refuse fills begun before now (the connection failed)."""
        with self._lock:
            self._seq += 1
            self._clear()
            self.counters["dropped"] += 1

    def after_fork(self) -> None:
        """Start empty in a forked child (another thread may have held the lock at the fork)."""
        self._lock = threading.Lock()
        self.drop_all()

    def figures(self) -> dict[str, int]:
        """Entries, bytes and the counters, for status pages and metrics."""
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes, **self.counters}

    # -- mechanism ----------------------------------------------------------------------

    def _changed_since(self, key: str, token: int) -> bool:
        return token < self._horizon or self._recent.get(key, -1) > token

    def _clear(self) -> None:
        self._reset()
        self._seq = self._horizon = self._seq + 1  # no token from before is good any more

    def _remove(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._bytes -= entry[2]
        return True

    def _forget_derived(self, name: str) -> None:
        self._remove(name)
        self._unlink(name)

    def _unlink(self, name: str) -> None:
        for key in self._depends.pop(name, ()):
            names = self._dependents.get(key)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._dependents[key]

    def _keep(self, key: str, value: Any, is_object: bool, size: int) -> None:
        cost = size + len(key) + _OVERHEAD
        if cost > self.max_bytes:
            return
        self._remove(key)
        self._entries[key] = (value, is_object, cost)
        self._bytes += cost
        self.counters["fills"] += 1
        while self._bytes > self.max_bytes:
            evicted, (_, _, charged) = self._entries.popitem(last=False)
            self._bytes -= charged
            self.counters["evicted"] += 1
            if evicted.startswith(_DERIVED):
                self._unlink(evicted)


class _Raw:
    """Marks a copy kept as Redis's bytes while a lookup holds the lock."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data
