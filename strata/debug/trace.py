"""What Strata did for one request, recorded only while the debug toolbar's panel watches.

The caches call the hooks below at the points where they decide something (a query
answered from the cache or not, a fragment found or rendered).
Each hook site reads one context variable first::

    if (t := trace.active.get()) is not None:
        t.query("hit", compiler, tags)

so with the panel off (always, in production) a hook costs one ``ContextVar.get``. The
panel (:mod:`strata.debug.panel`) opens a :class:`Trace` around the request with
:func:`tracing`; everything recorded is plain data (strings, lists, dicts), ready for
the toolbar's store, which serialises panels' stats as JSON.

The caches import this module; it imports nothing of theirs (only :mod:`strata.signals`,
which imports nothing of Strata's).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ..signals import post_invalidation

__all__ = ["Trace", "active", "tracing", "MAX_ENTRIES"]

MAX_ENTRIES = 500
"""At most this many entries of each kind are kept per request (a loop of queries)."""
_MAX_SQL = 2000

active: ContextVar[Trace | None] = ContextVar("strata_debug_trace", default=None)
"""The trace of the request being watched, or None (the hooks' only cost when off)."""


def _sql_of(compiler) -> str:
    """The SQL of a compiled query with its parameters, for a person to read."""
    try:
        sql, params = compiler.as_sql()
    except Exception:  # EmptyResultSet, or the query's own error: Django reports it
        return "(the query could not be compiled)"
    text = sql if not params else f"{sql}  -- params {tuple(params)!r}"
    return text if len(text) <= _MAX_SQL else text[:_MAX_SQL] + " …"


class Trace:
    """Everything Strata's caches reported while one request was answered."""

    def __init__(self) -> None:
        self.queries: list[dict[str, Any]] = []
        self.fragments: list[dict[str, Any]] = []
        self.invalidations: list[dict[str, Any]] = []
        self.dropped = 0
        """Entries not kept past :data:`MAX_ENTRIES`."""

    def _keep(self, entries: list[dict[str, Any]], entry: dict[str, Any]) -> None:
        if len(entries) < MAX_ENTRIES:
            entries.append(entry)
        else:
            self.dropped += 1

    # -- the query cache (strata/querycache/reads.py) ----------------------------------

    def query(
        self,
        result: str,
        compiler,
        tags: Iterable[str] = (),
        reason: str = "",
    ) -> None:
        """A SELECT: ``hit`` (served from the cache), ``miss`` (read from the database,
        stored when allowed) or ``bypass`` (read from the database, stored nowhere)."""
        self._keep(
            self.queries,
            {
                "result": result,
                "sql": _sql_of(compiler),
                "alias": getattr(getattr(compiler, "connection", None), "alias", ""),
                "tags": sorted(tags),
                "reason": reason,
            },
        )

    # -- the fragment cache (strata/fragments/cache.py) --------------------------------

    def fragment_started(self, fragment) -> None:
        """A ``{% cached %}`` block is about to be looked up (its outcome follows)."""
        self._keep(
            self.fragments,
            {
                "origin": str(fragment.origin),
                "line": int(fragment.line),
                "result": "",
                "reason": "",
                "key": "",
                "tags": [],
                "stored": False,
            },
        )

    def _open_fragment(self) -> dict[str, Any] | None:
        # The latest block without an outcome: a block's lookup comes before any of the
        # blocks nested in it start, so this is the block deciding now.
        for entry in reversed(self.fragments):
            if not entry["result"]:
                return entry
        return None

    def fragment(
        self, result: str, key: str = "", tags: Iterable[str] = (), reason: str = ""
    ) -> None:
        """The outcome of the block being looked up: ``hit``, ``miss`` or ``bypass``."""
        entry = self._open_fragment()
        if entry is not None:
            entry.update(result=result, key=key, tags=sorted(tags), reason=reason)

    def fragment_stored(self, key: str, tags: Iterable[str]) -> None:
        """A missed block was rendered and stored with ``tags``."""
        for entry in reversed(self.fragments):
            if entry["key"] == key:
                entry.update(stored=True, tags=sorted(tags))
                return

    # -- invalidations (strata.signals.post_invalidation) ------------------------------

    def invalidation(
        self, tags: Iterable[str], using: str, changed: bool, position: str | None
    ) -> None:
        """A write of this request changed the versions of ``tags``."""
        self._keep(
            self.invalidations,
            {
                "tags": sorted(tags),
                "using": str(using),
                "changed": bool(changed),
                "position": position,
            },
        )

    def as_stats(self) -> dict[str, Any]:
        """Everything recorded, as plain data."""
        return {
            "queries": self.queries,
            "fragments": self.fragments,
            "invalidations": self.invalidations,
            "dropped": self.dropped,
        }


def _on_invalidation(sender, tags, using, changed=True, position=None, **kwargs) -> None:
    """Receiver of ``post_invalidation``: add it to the trace of the request that wrote.

    Receivers run in the thread that committed, so the context variable names the
    request whose write it was; other requests' writes find no trace (or their own).
    """
    trace = active.get()
    if trace is not None:
        trace.invalidation(tags, using, changed, position)


_receivers = 0
_receivers_lock = threading.Lock()


def _connect() -> None:
    global _receivers
    with _receivers_lock:
        if _receivers == 0:
            post_invalidation.connect(_on_invalidation, dispatch_uid="strata-debug-trace")
        _receivers += 1


def _disconnect() -> None:
    global _receivers
    with _receivers_lock:
        _receivers -= 1
        if _receivers == 0:
            post_invalidation.disconnect(dispatch_uid="strata-debug-trace")


@contextmanager
def tracing(trace: Trace | None = None) -> Iterator[Trace]:
    """Record what the caches do in this context (this request) until the block ends,
    into ``trace`` (a new one by default).

    Invalidations are received only while some request is traced: the receiver is
    connected by the first trace and disconnected by the last.
    """
    trace = trace if trace is not None else Trace()
    token = active.set(trace)
    _connect()
    try:
        yield trace
    finally:
        _disconnect()
        active.reset(token)
