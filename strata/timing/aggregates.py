"""Per-view figures: summed in each process, written to the shared cache now and then.

Every timed request adds to its view's entry in this process: a count, the sums of each
section, queries and cache calls, a fixed-bucket latency histogram and the slowest
statements seen. Sums and bucket counts merge by addition, so the figures of many
processes (and machines) combine into one table, and two readings subtract into the
figures of the interval between them (what ``strata bench`` does around a run).

Entries are kept per view *and* per kind of answer, since a page-cache hit and a render
of the same view are different populations:

``page-hit``    served from the page cache by ``StrataMiddleware`` (fresh or stale)
``rendered``    the view ran (a page-cache miss, a bypass, no page cache)
``bench-warm``  bench mode, caches below the page cache on
``bench-cold``  bench mode, every Strata cache off

Hits answered by :class:`strata.pages.wsgi.PageCacheApplication` never reach Django and
are not counted here.

Writing: no thread. After a response has gone (``request_finished``) the request that
notices that ``FLUSH_INTERVAL`` seconds have passed writes this process's figures under
a key of its own, with a lifetime of twelve intervals (at least a minute), and makes
sure the key is listed in a registry of live processes. A process that stops writes no
more and its key expires; :func:`read_all` drops keys that are gone from the registry.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from bisect import bisect_left
from urllib.parse import quote

from django.core.cache import caches
from django.http import HttpRequest

from ..conf import strata_settings
from ..edge.outcomes import Outcome
from ..edge.purge import purger
from ..tags.stores import version_store
from .collector import CACHE, DB, SECTIONS, TEMPLATE, RequestTiming

__all__ = [
    "BUCKETS_MS",
    "KINDS",
    "REGISTRY_KEY",
    "PROCESS_PREFIX",
    "OTHER_VIEW",
    "SQL_LIMIT",
    "record",
    "flush",
    "flush_if_due",
    "read_all",
    "local",
    "reset",
    "process_key",
    "summarize",
    "merge",
    "view_of",
    "known_view",
    "clean_sql",
]

log = logging.getLogger("strata.timing")

BUCKETS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Upper bounds of the histogram's buckets, in ms; one more bucket counts what is slower."""
_BUCKETS_S = tuple(bound / 1000 for bound in BUCKETS_MS)
KINDS = (Outcome.PAGE_HIT.value, "rendered", "bench-warm", "bench-cold")
REGISTRY_KEY = "strata:timing:processes"
"""Maps each live process's key to the wall-clock time it last registered."""
PROCESS_PREFIX = "strata:timing:p:"
OTHER_VIEW = "(other)"
"""Where requests go once a process has ``MAX_ENTRIES`` entries (404s for random paths)."""
MAX_ENTRIES = 400
"""Entries per process: a payload stays well under Memcached's 1 MB item limit."""
SQL_LIMIT = 300
"""Characters of SQL kept per statement."""
_REGISTRY_TTL = 24 * 3600
_MAX_PATHS = 4096
_WARN_EVERY = 60.0


def clean_sql(sql: object) -> str:
    """One line of at most :data:`SQL_LIMIT` characters (no parameters ever reach here)."""
    text = sql if isinstance(sql, str) else str(sql)
    return " ".join(text[: SQL_LIMIT * 4].split())[:SQL_LIMIT]


class _Entry:
    """The figures of one (view, kind) in this process; seconds internally."""

    __slots__ = ("count", "total", "spent", "calls", "histogram", "slowest")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.spent = [0.0, 0.0, 0.0]
        self.calls = [0, 0, 0]
        self.histogram = [0] * (len(BUCKETS_MS) + 1)
        self.slowest: list[list] = []  # [seconds, cleaned sql], slowest first

    def add(self, timing: RequestTiming, keep: int) -> None:
        total = timing.total
        spent, calls = timing.spent, timing.calls
        self.count += 1
        self.total += total
        mine, counts = self.spent, self.calls
        mine[0] += spent[0]
        mine[1] += spent[1]
        mine[2] += spent[2]
        counts[0] += calls[0]
        counts[1] += calls[1]
        counts[2] += calls[2]
        self.histogram[bisect_left(_BUCKETS_S, total)] += 1
        if timing.slow and keep:
            floor = self.slowest[-1][0] if len(self.slowest) >= keep else -1.0
            for seconds, sql in timing.slow:
                if seconds > floor:
                    _keep_slowest(self.slowest, seconds, clean_sql(sql), keep)
                    floor = self.slowest[-1][0] if len(self.slowest) >= keep else -1.0

    def as_dict(self) -> dict:
        spent = self.spent
        return {
            "count": self.count,
            "total_ms": self.total * 1000,
            "db_ms": spent[DB] * 1000,
            "cache_ms": spent[CACHE] * 1000,
            "template_ms": spent[TEMPLATE] * 1000,
            "app_ms": max(0.0, self.total - sum(spent)) * 1000,
            "queries": self.calls[DB],
            "cache_calls": self.calls[CACHE],
            "histogram": list(self.histogram),
            "slowest": [{"ms": seconds * 1000, "sql": sql} for seconds, sql in self.slowest],
        }


def _keep_slowest(slowest: list[list], seconds: float, sql: str, keep: int) -> None:
    """Insert ``(seconds, sql)`` into ``slowest`` (one entry per statement text)."""
    for item in slowest:
        if item[1] == sql:
            if seconds > item[0]:
                item[0] = seconds
                slowest.sort(key=lambda entry: entry[0], reverse=True)
            return
    slowest.append([seconds, sql])
    slowest.sort(key=lambda entry: entry[0], reverse=True)
    del slowest[keep:]


class _Figures:
    """This process's entries, and when they are to be written next."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[tuple[str, str], _Entry] = {}
        self.pid = os.getpid()
        self.token = secrets.token_hex(3)  # a pid can be reused after a restart
        self.started = time.time()
        self.next_flush = 0.0  # the first request of a process registers it
        self.warned = 0.0


_figures = _Figures()
_views_by_path: dict[str, str] = {}


def reset() -> None:
    """Forget this process's figures (and start again under a new key)."""
    global _figures
    _figures = _Figures()
    _views_by_path.clear()


# A worker forked from a master that served requests starts from nothing, under its own key.
os.register_at_fork(after_in_child=reset)


def record(view: str, kind: str, timing: RequestTiming, keep: int = 3) -> None:
    """Add one finished request to ``(view, kind)``; ``keep`` slowest statements per entry."""
    figures = _figures
    key = (view, kind)
    with figures.lock:
        entry = figures.entries.get(key)
        if entry is None:
            if len(figures.entries) >= MAX_ENTRIES:
                key = (OTHER_VIEW, kind)
                entry = figures.entries.get(key)
            if entry is None:
                entry = figures.entries[key] = _Entry()
        entry.add(timing, keep)


def view_of(request: HttpRequest, served_from_cache: bool = False) -> str:
    """The dotted name of the view behind ``request``, or the first segment of its path.

    A page-cache hit runs no view (the URL is not even resolved): it gets the name of the
    view that last rendered that path in this process, if any.
    """
    path = request.path_info
    known = _views_by_path.get(path)
    if served_from_cache:
        if known is not None:
            return known
        name = None
    else:
        match = getattr(request, "resolver_match", None)
        name = None if match is None else match._func_path
        if name is not None and name == known:
            return name
    if name is None:
        head, slash, _ = path.lstrip("/").partition("/")
        # Percent-encoded: the name goes into a response header and JSON.
        name = quote(("/" + head + slash)[:100], safe="/-._~!$&'()*+,;=:@")
        if known is not None and not served_from_cache:
            return name  # a 404 of a path rendered before: keep the view's name for hits
    if len(_views_by_path) >= _MAX_PATHS:
        _views_by_path.clear()
    _views_by_path[path] = name  # remembered: hits of this path cost a lookup
    return name


def known_view(path: str) -> str | None:
    """The view name :func:`view_of` last gave ``path`` in this process (None: none yet)."""
    return _views_by_path.get(path)


_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_.:-]")


def process_key() -> str:
    """The cache key under which this process writes its figures."""
    figures = _figures
    name = _UNSAFE_KEY.sub("_", strata_settings().server_name)[:60]
    return f"{PROCESS_PREFIX}{name}:{figures.pid}:{figures.token}"


def local() -> dict:
    """This process's figures as :func:`flush` writes them (nothing is written)."""
    conf = strata_settings()
    figures = _figures
    with figures.lock:
        views: dict[str, dict] = {}
        for (view, kind), entry in figures.entries.items():
            views.setdefault(view, {})[kind] = entry.as_dict()
    return {
        "key": process_key(),
        "server": conf.server_name,
        "pid": figures.pid,
        "started": figures.started,
        "flushed": time.time(),
        "views": views,
        "purges": _purge_status(),
        "near_cache": _near_cache_figures(conf.cache_alias),
    }


def _near_cache_figures(cache_alias: str) -> dict | None:
    """This process's near cache: entries, bytes and counters (None where it is off)."""
    near = getattr(version_store(cache_alias), "near", None)
    return near.figures() if near is not None else None


def _purge_status() -> dict | None:
    running = purger()
    return running.status() if running is not None else None


def merge_purges(into: dict, status: dict) -> dict:
    """Add one process's purge counters to ``into``; keep the latest failure."""
    for name, value in status.items():
        if isinstance(value, int):
            into[name] = into.get(name, 0) + value
    failure = status.get("last_failure")
    latest = into.get("last_failure")
    if failure and (not latest or failure["time"] > latest["time"]):
        into["last_failure"] = failure
    into.setdefault("last_failure", None)
    into["nodes"] = status.get("nodes", into.get("nodes", []))
    return into


def flush_if_due() -> None:
    """Write this process's figures if ``FLUSH_INTERVAL`` has passed (cheap otherwise)."""
    if time.monotonic() >= _figures.next_flush:
        flush()


def flush(force: bool = False) -> bool:
    """Write this process's figures to the Strata cache; True when they were written.

    Never raises: a cache that fails is logged (once a minute) and tried again next time.
    """
    conf = strata_settings()
    interval = conf.timing.flush_interval
    figures = _figures
    now = time.monotonic()
    with figures.lock:
        if not force and now < figures.next_flush:
            return False  # another thread is writing, or just wrote
        figures.next_flush = now + interval
    payload = local()
    key = payload["key"]
    ttl = max(60, int(12 * interval))
    try:
        cache = caches[conf.cache_alias]
        cache.set(key, payload, ttl)
        registry = cache.get(REGISTRY_KEY)
        if not isinstance(registry, dict):
            registry = {}
        wall = time.time()
        seen = registry.get(key)
        if seen is None or wall - seen > ttl / 2:
            # Concurrent writers may drop each other's entry: each checks again next time.
            registry = {k: t for k, t in registry.items() if wall - t <= 2 * ttl}
            registry[key] = wall
            cache.set(REGISTRY_KEY, registry, _REGISTRY_TTL)
    except Exception as exc:
        if now - figures.warned >= _WARN_EVERY:
            figures.warned = now
            log.warning("strata: could not write the timing figures (%s)", exc)
        return False
    return True


def merge(into: dict, entry: dict, keep: int = 3) -> dict:
    """Add the figures of ``entry`` to ``into`` (both as :func:`read_all` gives them)."""
    for name in ("count", "total_ms", "db_ms", "cache_ms", "template_ms", "app_ms"):
        into[name] = into.get(name, 0) + entry.get(name, 0)
    for name in ("queries", "cache_calls"):
        into[name] = into.get(name, 0) + entry.get(name, 0)
    histogram = into.setdefault("histogram", [0] * (len(BUCKETS_MS) + 1))
    for index, count in enumerate(entry.get("histogram", ())):
        if index < len(histogram):
            histogram[index] += count
    slowest = [[item["ms"], item["sql"]] for item in into.get("slowest", ())]
    for item in entry.get("slowest", ()):
        _keep_slowest(slowest, item["ms"], item["sql"], keep)
    into["slowest"] = [{"ms": ms, "sql": sql} for ms, sql in slowest]
    return into


def read_all() -> dict:
    """The figures of every live process, merged per view and kind.

    ``{"processes": [{"key", "server", "pid", "started", "flushed"}...],
    "buckets_ms": [...], "views": {view: {kind: {"count", "total_ms", "db_ms",
    "cache_ms", "template_ms", "app_ms", "queries", "cache_calls", "histogram",
    "slowest": [{"ms", "sql"}]}}}, "purges": {counters summed, "waiting_retry",
    "last_failure": {"time", "node", "reason"} | None} | None, "near_cache": {"processes",
    "entries", "bytes", counters summed} | None}``. Figures are sums since each process started, as of
    its last write. Raises what the cache raises when it is unavailable.
    """
    conf = strata_settings()
    keep = max(conf.timing.slow_queries, 1)
    cache = caches[conf.cache_alias]
    registry = cache.get(REGISTRY_KEY)
    if not isinstance(registry, dict):
        registry = {}
    found = cache.get_many(list(registry)) if registry else {}
    if len(found) < len(registry):
        live = {k: t for k, t in registry.items() if k in found}
        cache.set(REGISTRY_KEY, live, _REGISTRY_TTL)
    processes = []
    views: dict[str, dict] = {}
    purges: dict | None = None
    near: dict | None = None
    for key in sorted(found):
        payload = found[key]
        if not isinstance(payload, dict):
            continue
        if payload.get("purges"):
            purges = merge_purges(purges or {}, payload["purges"])
        if payload.get("near_cache"):
            near = near or {"processes": 0}
            near["processes"] += 1
            for name, value in payload["near_cache"].items():
                near[name] = near.get(name, 0) + value
        processes.append({name: payload.get(name) for name in ("key", "server", "pid")})
        processes[-1].update(started=payload.get("started"), flushed=payload.get("flushed"))
        for view, kinds in payload.get("views", {}).items():
            for kind, entry in kinds.items():
                merge(views.setdefault(view, {}).setdefault(kind, {}), entry, keep)
    return {
        "processes": processes,
        "buckets_ms": list(BUCKETS_MS),
        "views": views,
        "purges": purges,
        "near_cache": near,
    }


def _percentile(histogram: list[int], count: int, fraction: float) -> float | None:
    """The upper bound of the bucket holding the ``fraction`` quantile (None: slower than all)."""
    wanted = fraction * count
    running = 0
    for index, bucket in enumerate(histogram):
        running += bucket
        if running >= wanted and running:
            return float(BUCKETS_MS[index]) if index < len(BUCKETS_MS) else None
    return None


def summarize(entry: dict) -> dict:
    """Means, shares of the total and bucket-bound percentiles of one merged entry.

    ``shares`` are fractions of the total time; ``over_30`` names the components (db,
    cache, template) above the seed's 30% rule. ``p50_ms``/``p99_ms`` are the upper
    bounds of the histogram buckets they fall in (``None``: slower than the last bound).
    """
    count = entry.get("count", 0) or 0
    total = entry.get("total_ms", 0.0) or 0.0
    shares = {
        name: (entry.get(f"{name}_ms", 0.0) / total if total else 0.0)
        for name in (*SECTIONS, "app")
    }
    histogram = entry.get("histogram", [])
    return {
        "count": count,
        "mean_ms": total / count if count else 0.0,
        "p50_ms": _percentile(histogram, count, 0.5) if count else None,
        "p99_ms": _percentile(histogram, count, 0.99) if count else None,
        "shares": shares,
        "over_30": [name for name in SECTIONS if shares[name] > 0.3],
        "queries_per_request": entry.get("queries", 0) / count if count else 0.0,
        "cache_calls_per_request": entry.get("cache_calls", 0) / count if count else 0.0,
        "slowest": entry.get("slowest", []),
    }
