"""The hit ratios that ``strata bench`` and ``strata check`` put in their reports: the
same readings as ``strata top``, taken before and after a run, with where each figure
came from (a ``/-/metrics`` URL, a ``varnishstat`` command, a ``/-/timing/`` URL)."""

from __future__ import annotations

import time
from collections.abc import Callable

from .model import Reading, Row, compare

SETTLE_SECONDS = 0.3
"""Wait before each reading: Varnish adds up a busy connection's counters only once its
worker thread goes idle (``timeout_linger``, 50 ms), so a reading taken the moment the
load stops misses its last requests."""

__all__ = ["hit_ratios", "hit_ratio_lines", "hit_ratio_summary", "sources_of", "Watch"]


def _entry(row: Row) -> dict:
    entry = {
        "name": row.name,
        "up": row.up,
        "hit_ratio": None if row.hit_ratio is None else round(row.hit_ratio, 4),
        "hits": int(row.counts.get("hits", 0)),
        "lookups": int(row.counts.get("lookups", 0)),
        "requests": int(row.counts.get("requests", 0)),
        "source": row.source,
    }
    if not row.up:
        entry["error"] = row.note
    return entry


def hit_ratios(before: Reading, after: Reading) -> dict:
    """What the caches answered between two readings: per accelerator (Varnish hits of
    its lookups), the page cache (per app server, and all), the query cache."""
    figures = compare(before, after)
    return {
        "seconds": round(figures.seconds, 3),
        "accelerator": [_entry(row) for row in figures.tier("accelerator")],
        "page_cache": [_entry(row) for row in figures.tier("app server")],
        "query_cache": [_entry(row) for row in figures.tier("query cache")],
    }


def _share(entry: dict) -> str:
    if not entry["up"]:
        return f"{entry['name']} not read ({entry.get('error', '')})"
    if entry["hit_ratio"] is None:
        return f"{entry['name']} — (no lookups)"
    return f"{entry['name']} {entry['hit_ratio']:.1%} ({entry['hits']:,} of {entry['lookups']:,})"


def hit_ratio_lines(data: dict | None) -> list[str]:
    """The report's sentences: one per cache tier, then the sources (plain text)."""
    if not data:
        return []
    lines = []
    labels = (
        ("accelerator", "accelerator hits"),
        ("page_cache", "page-cache hits"),
        ("query_cache", "query-cache hits"),
    )
    for key, label in labels:
        entries = data.get(key) or []
        if entries:
            lines.append(f"{label}: " + "; ".join(_share(e) for e in entries))
    sources = sources_of(data)
    if sources:
        lines.append("read from " + ", ".join(sources))
    return lines


def hit_ratio_summary(data: dict) -> str:
    """All of :func:`hit_ratios` in one line: ``accelerator varnish1 99.0% (99 of 100);
    page cache all ...`` (the sources apart: :func:`sources_of`)."""
    labels = (
        ("accelerator", "accelerator"),
        ("page_cache", "page cache"),
        ("query_cache", "query cache"),
    )
    parts = []
    for key, label in labels:
        entries = data.get(key) or []
        if key == "page_cache" and len(entries) > 1:
            entries = [e for e in entries if e["name"] == "all"] or entries
        for entry in entries:
            parts.append(f"{label} {_share(entry)}")
    return "; ".join(parts) or "no cache figures"


def sources_of(data: dict) -> list[str]:
    """Where the figures of :func:`hit_ratios` came from (URLs and commands)."""
    keys = ("accelerator", "page_cache", "query_cache")
    return sorted(
        {
            source
            for key in keys
            for entry in data.get(key) or []
            for source in entry["source"].split(", ")  # a row of all: each one's
            if source
        }
    )


class Watch:
    """Readings around a run: :meth:`start` before it, :meth:`stop` after, which gives
    :func:`hit_ratios` (None when no reading could be taken)."""

    def __init__(self, read: Callable[[], Reading], settle: float = SETTLE_SECONDS):
        self.read = read
        self.settle = settle
        self.before: Reading | None = None

    def start(self) -> None:
        """Take the reading before the run (after the load before it settled)."""
        time.sleep(self.settle)
        self.before = self._read()

    def stop(self) -> dict | None:
        """Take the reading after the run; the hit ratios between the two."""
        time.sleep(self.settle)
        after = self._read()
        if self.before is None or after is None:
            return None
        return hit_ratios(self.before, after)

    def _read(self) -> Reading | None:
        try:
            return self.read()
        except Exception:  # a report must not fail for want of its hit ratios
            return None
