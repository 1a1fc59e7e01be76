"""Where one request's time goes: a collector in a context variable, fed by the hooks.

The hooks (:mod:`strata.timing.monkey_patch`) call :meth:`RequestTiming.enter` when the
code enters the database, a cache or a template, and :meth:`RequestTiming.leave` when it
comes back. The collector keeps a stack of the sections it is in and charges the time
between two events to the innermost one, so the sections never overlap:

* a query run while a template renders (a lazy QuerySet in a ``{% for %}``) is database
  time, not template time; a ``{% cached %}`` lookup inside a template is cache time;
* a section nested in one of its own kind (a template that includes another, Strata's
  version store calling Django's cache backend, ``get_or_set`` calling ``get``) is one
  section: its time is counted once and it is one call, not two.

What is left — the total minus database, cache and templates — is the application:
Python in the views, middleware and Django itself. ``db + cache + template + app`` is
the total by construction, which is what the seed's "30% rule" needs.

Outside a request (management commands, tests, threads started by a request) no
collector is active and every hook costs one context-variable read.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

__all__ = [
    "DB",
    "CACHE",
    "TEMPLATE",
    "SECTIONS",
    "RequestTiming",
    "current",
    "start",
    "stop",
    "timed",
]

DB, CACHE, TEMPLATE = 0, 1, 2
"""Section numbers (indexes of :attr:`RequestTiming.spent` and :attr:`RequestTiming.calls`)."""
SECTIONS = ("db", "cache", "template")

_active: contextvars.ContextVar[RequestTiming | None] = contextvars.ContextVar(
    "strata_timing", default=None
)


class RequestTiming:
    """The time one request spent in each section, the calls made, its slowest SQL.

    Times are in seconds (``time.perf_counter``); ``calls[DB]`` counts SQL statements,
    ``calls[CACHE]`` calls to a cache (outermost only).
    """

    __slots__ = (
        "started",
        "ended",
        "spent",
        "calls",
        "slow",
        "slow_limit",
        "top",
        "_floor",
        "_mark",
        "_stack",
    )

    def __init__(self, slow_limit: int = 3) -> None:
        self.started = self._mark = perf_counter()
        self.ended: float | None = None
        self.spent = [0.0, 0.0, 0.0]
        """Seconds in ``db``, ``cache`` and ``template`` (exclusive of each other)."""
        self.calls = [0, 0, 0]
        """SQL statements, cache calls, outermost template renders."""
        self.slow: list[tuple[float, object]] = []
        """Up to ``slow_limit`` of the slowest statements: ``(seconds, sql)``, unordered."""
        self.slow_limit = slow_limit
        # Statements this fast cannot enter ``slow``; infinite when nothing is kept.
        self._floor = -1.0 if slow_limit > 0 else float("inf")
        self._stack: list[int] = []
        self.top = -1
        """The innermost section the code is in (-1: none). A hook called inside a
        section of its own kind skips :meth:`enter` and :meth:`leave` altogether: the
        time would go to the same section, and the call is not a new one."""

    # -- fed by the hooks --------------------------------------------------------------

    def enter(self, kind: int, count: bool = True) -> float:
        """The code enters section ``kind``; returns the time (for the caller's duration)."""
        now = perf_counter()
        stack = self._stack
        if stack:
            self.spent[stack[-1]] += now - self._mark
            if kind in stack:
                count = False  # the same call seen through one more layer
        self._mark = now
        stack.append(kind)
        self.top = kind
        if count:
            self.calls[kind] += 1
        return now

    def leave(self) -> float:
        """The code leaves the innermost section; returns the time."""
        now = perf_counter()
        stack = self._stack
        self.spent[stack.pop()] += now - self._mark
        self._mark = now
        self.top = stack[-1] if stack else -1
        return now

    def query(self, sql: object, seconds: float) -> None:
        """Remember ``sql`` if it is among the slowest statements of the request."""
        if seconds <= self._floor:
            return  # the usual case once the list is full: one comparison
        slow = self.slow
        if len(slow) < self.slow_limit:
            slow.append((seconds, sql))
            if len(slow) < self.slow_limit:
                return
        else:
            # A handful of entries: a linear scan is cheaper than keeping a heap.
            lowest = min(range(len(slow)), key=lambda i: slow[i][0])
            slow[lowest] = (seconds, sql)
        self._floor = min(item[0] for item in slow)

    # -- read by the middleware --------------------------------------------------------

    def finish(self) -> None:
        """Stop the clock (``total`` no longer grows)."""
        if self.ended is None:
            self.ended = perf_counter()

    @property
    def total(self) -> float:
        """Seconds from the start to :meth:`finish` (or to now)."""
        return (self.ended if self.ended is not None else perf_counter()) - self.started

    @property
    def app(self) -> float:
        """Seconds outside the database, caches and templates."""
        spent = self.spent
        return max(0.0, self.total - spent[0] - spent[1] - spent[2])

    @property
    def queries(self) -> int:
        """SQL statements executed."""
        return self.calls[DB]

    @property
    def cache_calls(self) -> int:
        """Calls to a cache (Django's backends and Strata's version store)."""
        return self.calls[CACHE]

    def slowest(self, limit: int | None = None) -> list[tuple[float, object]]:
        """The slowest statements, slowest first: ``(seconds, sql)``."""
        ranked = sorted(self.slow, key=lambda item: item[0], reverse=True)
        return ranked if limit is None else ranked[:limit]

    def as_dict(self) -> dict:
        """Milliseconds per section, counts and the slowest statements (for logs, tests)."""
        return {
            "db_ms": self.spent[DB] * 1000,
            "cache_ms": self.spent[CACHE] * 1000,
            "template_ms": self.spent[TEMPLATE] * 1000,
            "app_ms": self.app * 1000,
            "total_ms": self.total * 1000,
            "queries": self.queries,
            "cache_calls": self.cache_calls,
        }


def current() -> RequestTiming | None:
    """The collector of the request being served in this context, if any."""
    return _active.get()


def start(slow_limit: int = 3) -> tuple[RequestTiming, contextvars.Token]:
    """Start timing in this context; pass the token to :func:`stop`."""
    timing = RequestTiming(slow_limit)
    return timing, _active.set(timing)


def stop(token: contextvars.Token) -> None:
    """Stop the collector started with ``token`` and make the previous one current."""
    timing = _active.get()
    if timing is not None:
        timing.finish()
    _active.reset(token)


@contextmanager
def timed(slow_limit: int = 3) -> Iterator[RequestTiming]:
    """Time a block as if it were a request (scripts, tests, a Celery task)."""
    timing, token = start(slow_limit)
    try:
        yield timing
    finally:
        stop(token)
