"""The metric objects, and the per-process tally that feeds the ones counted per request.

Every metric is created here, once, when :mod:`strata.metrics` is first imported. That is
also when ``prometheus_client`` picks where values live: in memory, or, when the app
server set ``PROMETHEUS_MULTIPROC_DIR`` before the process started, in one file per
process in that directory (a worker forked after the import notices its new pid and
writes files of its own).

Counted where they happen (rare, and slow anyway): purges (in the purger's thread),
invalidations, cache errors and the circuit state of each cache.

Counted per request — the hot path, a page-cache hit costs 10–14 µs in all — through the
:class:`Tally`: plain numbers added under one lock (well under a microsecond), moved into
the ``prometheus_client`` values by a daemon thread once a second, by a scrape of this
process, and at exit. A direct ``Counter.inc`` plus ``Histogram.observe`` costs 1.5 µs
in memory and 3 µs in multiprocess mode (``benchmarks/metrics_cost.py``). The price:
another process's last second may be missing from a scrape.

The query cache's and the near cache's own counters are read by the same flush, as
differences since the last one: nothing is counted twice.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured
from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "MULTIPROC_ENV",
    "REQUESTS",
    "REQUEST_SECONDS",
    "SECTION_SECONDS",
    "QUERY_CACHE",
    "INVALIDATIONS",
    "INVALIDATED_TAGS",
    "INVALIDATION_ROWS",
    "PURGES",
    "PURGE_SECONDS",
    "CACHE_ERRORS",
    "CIRCUIT_OPEN",
    "NEAR_LOOKUPS",
    "NEAR_BYTES",
    "NEAR_ENTRIES",
    "NEAR_INVALIDATIONS",
    "NEAR_DROPS",
    "REQUEST_BUCKETS",
    "PURGE_BUCKETS",
    "OTHER",
    "PAGE_CACHE_VIEW",
    "MAX_VIEWS",
    "MAX_REASONS",
    "FLUSH_EVERY",
    "LATE_AFTER",
    "Tally",
    "tally",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set for the app server (before Python starts): every worker writes its values there."""

_directory = os.environ.get(MULTIPROC_ENV)
if _directory and not (os.path.isdir(_directory) and os.access(_directory, os.W_OK)):
    # prometheus_client would fail on the first value with a FileNotFoundError.
    raise ImproperlyConfigured(
        f"{MULTIPROC_ENV}={_directory!r} is not a writable directory: create it (empty) "
        "before the app server starts, or unset it for a single process."
    )

REQUEST_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    float("inf"),
)
"""Upper bounds in seconds: the timing page's buckets, and two below them for page hits."""
PURGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

OTHER = "(other)"
"""The view (or bypass reason) of every request past the bound of distinct values."""
PAGE_CACHE_VIEW = "(page cache)"
"""The view of a hit answered below Django for a path no view rendered in this process."""
MAX_VIEWS = 200
"""Distinct view names per process; a Prometheus series per name, outcome and reason."""
MAX_REASONS = 50
FLUSH_EVERY = 1.0
"""Seconds between two moves of the tally into the metric values."""
LATE_AFTER = 5 * FLUSH_EVERY
"""A request that finds the last move older than this makes one itself: the thread does not
run where the app server runs no threads of the app's (uWSGI without ``enable-threads``)."""

REQUESTS = Counter(
    "strata_requests",
    "Requests by view and X-Strata outcome (page-hit, page-stale, page-miss, bypass, none).",
    ("view", "outcome", "reason"),
)
REQUEST_SECONDS = Histogram(
    "strata_request_duration_seconds",
    "Time in Strata's hands per request (below Django for hits answered there).",
    ("view", "outcome"),
    buckets=REQUEST_BUCKETS,
)
SECTION_SECONDS = Histogram(
    "strata_render_section_seconds",
    "Time of a rendered request in each section: db, cache, template, app.",
    ("view", "section"),
    buckets=REQUEST_BUCKETS,
)
QUERY_CACHE = Counter(
    "strata_query_cache",
    "Query cache lookups and writes: hit, miss, store, bypass, error, invalidate.",
    ("result",),
)
INVALIDATIONS = Counter("strata_invalidations", "Version changes made after writes committed.")
INVALIDATED_TAGS = Counter("strata_invalidated_tags", "Tags whose versions were changed.")
INVALIDATION_ROWS = Counter(
    "strata_invalidation_rows", "Rows whose values writes read to name their tags."
)
PURGES = Counter(
    "strata_purges",
    "Purge requests to accelerators: sent, retried, failed.",
    ("accelerator", "result"),
)
PURGE_SECONDS = Histogram(
    "strata_purge_duration_seconds",
    "Time of one purge request to an accelerator.",
    ("accelerator",),
    buckets=PURGE_BUCKETS,
)
CACHE_ERRORS = Counter("strata_cache_errors", "Failures of a cache Strata uses.", ("cache",))
CIRCUIT_OPEN = Gauge(
    "strata_cache_circuit_open",
    "1 while Strata treats that cache (or Memcached node) as down.",
    ("cache",),
    multiprocess_mode="livemax",
)
NEAR_LOOKUPS = Counter("strata_near_cache_lookups", "Near cache lookups: hit, miss.", ("result",))
NEAR_BYTES = Gauge(
    "strata_near_cache_bytes", "Bytes of the near cache's copies.", multiprocess_mode="livesum"
)
NEAR_ENTRIES = Gauge(
    "strata_near_cache_entries", "Copies in the near cache.", multiprocess_mode="livesum"
)
NEAR_INVALIDATIONS = Counter(
    "strata_near_cache_invalidations", "Near cache copies dropped by an invalidation."
)
NEAR_DROPS = Counter(
    "strata_near_cache_drops", "Times the near cache dropped everything (connection lost)."
)

log = logging.getLogger("strata.metrics")

_SECTIONS = ("db", "cache", "template", "app")
_REMEMBERED = 10_000  # names looked up before they are bounded


class _Pending:
    """Requests (or observations) not yet moved into their metric values."""

    __slots__ = ("view", "counter", "histogram", "sections", "count", "total", "buckets")

    def __init__(self, view: str, counter, histogram) -> None:
        self.view = view
        self.counter = counter
        self.histogram = histogram
        self.sections: tuple[_Pending, ...] = ()
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * len(REQUEST_BUCKETS)


class Tally:
    """This process's per-request figures, between two flushes."""

    def __init__(self) -> None:
        self.readers: list[Callable[[bool], None]] = []
        """Called by each flush with True: they add other counters' news since the last
        call (:mod:`.sources`); with False only to note where the counters stand."""
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        # A forked child starts from nothing: what the parent had pending is the parent's.
        # ``seen`` stays: the counters the child inherits were the parent's to report (a
        # Gunicorn master serves nothing; a parent that did may count its last second
        # twice). Nothing is read here: another thread may have held a lock at the fork.
        self.lock = threading.Lock()
        self.running = False
        self.flushed_at = time.monotonic()
        self.hits: dict[str | None, _Pending] = {}
        self.requests: dict[tuple[str, str], _Pending] = {}  # (view, word) -> its series
        self.series: dict[tuple[str, str, str], _Pending] = {}
        self.sections: dict[tuple[str, str], _Pending] = {}
        self.everything: list[_Pending] = []
        self.views: set[str] = set()
        self.reasons: set[str] = set()
        if not hasattr(self, "seen"):
            self.seen: dict[str, float] = {}  # the last values read of the other counters

    # -- the hot path -----------------------------------------------------------------

    def page_hit(self, view: str | None, seconds: float) -> None:
        """A fresh hit answered below Django (``view``: the name the path last rendered
        under in this process, or None)."""
        pending = self.hits.get(view)
        if pending is None:
            if len(self.hits) >= _REMEMBERED:
                self.hits.clear()
            pending = self.hits[view] = self._for_word(view or PAGE_CACHE_VIEW, "page-hit")
        with self.lock:
            pending.count += 1
            pending.total += seconds
            pending.buckets[bisect_left(REQUEST_BUCKETS, seconds)] += 1
        if not self.running:
            self._start()
        elif time.monotonic() - self.flushed_at > LATE_AFTER:
            self.flush()

    def request(self, view: str, word: str | None, seconds: float, timing=None) -> None:
        """A request served through ``StrataMiddleware``: its ``X-Strata`` word (None:
        no page cache involved), its time, and ``timing`` (a
        :class:`strata.timing.collector.RequestTiming`) when the view rendered."""
        key = (view, word or "")
        pending = self.requests.get(key)
        if pending is None:
            if len(self.requests) >= _REMEMBERED:
                self.requests.clear()
            pending = self.requests[key] = self._for_word(view, word)
        if timing is not None:
            if not pending.sections:
                pending.sections = tuple(self._section(pending.view, name) for name in _SECTIONS)
            spent = (*timing.spent, timing.app)
        with self.lock:
            pending.count += 1
            pending.total += seconds
            pending.buckets[bisect_left(REQUEST_BUCKETS, seconds)] += 1
            if timing is not None:
                for section, value in zip(pending.sections, spent, strict=True):
                    section.count += 1
                    section.total += value
                    section.buckets[bisect_left(REQUEST_BUCKETS, value)] += 1
        if not self.running:
            self._start()
        elif time.monotonic() - self.flushed_at > LATE_AFTER:
            self.flush()

    # -- bookkeeping ------------------------------------------------------------------

    @staticmethod
    def _bounded(value: str, known: set[str], limit: int) -> str:
        if value in known:
            return value
        if len(known) < limit:
            known.add(value)
            return value
        return OTHER

    def _for_word(self, view: str, word: str | None) -> _Pending:
        if word is None:
            outcome, reason = "none", ""
        elif word.startswith("bypass: "):
            outcome = "bypass"
            reason = self._bounded(word[len("bypass: ") :], self.reasons, MAX_REASONS)
        else:
            outcome, reason = str(word), ""
        view = self._bounded(view, self.views, MAX_VIEWS)
        key = (view, outcome, reason)
        pending = self.series.get(key)
        if pending is None:
            pending = self.series[key] = self._pending(view, outcome, reason)
        return pending

    def _pending(self, view: str, outcome: str, reason: str) -> _Pending:
        view = self._bounded(view, self.views, MAX_VIEWS)
        pending = _Pending(
            view, REQUESTS.labels(view, outcome, reason), REQUEST_SECONDS.labels(view, outcome)
        )
        self.everything.append(pending)
        return pending

    def _section(self, view: str, name: str) -> _Pending:
        pending = self.sections.get((view, name))
        if pending is None:
            pending = _Pending(view, None, SECTION_SECONDS.labels(view, name))
            self.sections[(view, name)] = pending
            self.everything.append(pending)
        return pending

    def _start(self) -> None:
        with self.lock:
            if self.running:
                return
            self.running = True
        thread = threading.Thread(target=self._run, name="strata-metrics", daemon=True)
        thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY)
            self.flush()

    def flush(self) -> None:
        """Move what this process counted into the metric values (never raises)."""
        self.flushed_at = time.monotonic()
        with self.lock:
            moved = []
            for pending in self.everything:
                if pending.count:
                    moved.append((pending, pending.count, pending.total, pending.buckets))
                    pending.count = 0
                    pending.total = 0.0
                    pending.buckets = [0] * len(REQUEST_BUCKETS)
        for pending, count, total, buckets in moved:
            if pending.counter is not None:
                pending.counter.inc(count)
            # What Histogram.observe does, ``count`` times at once (its own attributes:
            # tests/metrics checks the scraped histogram against the requests made).
            histogram = pending.histogram
            histogram._sum.inc(total)
            for index, number in enumerate(buckets):
                if number:
                    histogram._buckets[index].inc(number)
        for read in self.readers:
            try:
                read(True)
            except Exception:  # noqa: BLE001 - metrics never break a request or a scrape
                log.debug("strata: metrics could not read %r", read, exc_info=True)

    @staticmethod
    def add_difference(seen: dict[str, float], name: str, now: float, counter, count: bool) -> None:
        """Add to ``counter`` what the counter ``name`` counted since it was ``seen``
        (when ``count``; else only note ``now``)."""
        before = seen.get(name, 0)
        # A counter set back to zero (reset_stats) counts again from there.
        difference = now - before if now >= before else now
        seen[name] = now
        if difference and count:
            counter.inc(difference)


tally = Tally()
"""This process's tally."""
