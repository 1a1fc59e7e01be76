"""Counters Strata keeps anyway, read into the metrics by each flush of the tally.

The query cache counts in :data:`strata.querycache.stats.stats` and the near cache in
:meth:`strata.tags.nearcache.NearCache.figures`; each flush adds what they counted since
the last one, so nothing is counted twice and their hot paths pay nothing more.
Importing this module registers the reader (``StrataMiddleware`` and the metrics view do).
"""

from __future__ import annotations

from contextlib import suppress

from ..conf import strata_settings
from ..querycache.stats import stats
from ..tags.stores import version_store
from .registry import (
    NEAR_BYTES,
    NEAR_DROPS,
    NEAR_ENTRIES,
    NEAR_INVALIDATIONS,
    NEAR_LOOKUPS,
    QUERY_CACHE,
    Tally,
    tally,
)

__all__ = ["read_caches"]

_QUERY_RESULTS = ("hit", "miss", "store", "error", "invalidate")
_NEAR_COUNTERS = (
    ("hits", NEAR_LOOKUPS.labels("hit")),
    ("misses", NEAR_LOOKUPS.labels("miss")),
    ("invalidated", NEAR_INVALIDATIONS),
    ("dropped", NEAR_DROPS),
)


def read_caches(count: bool = True) -> None:
    """Add what the query cache and this process's near cache counted since last time
    (``count`` False: only note where they stand, as after a fork)."""
    seen = tally.seen
    add = Tally.add_difference
    counted = dict(stats)  # a copy: other threads count on
    bypass = sum(value for name, value in counted.items() if name.startswith("bypass:"))
    for result in _QUERY_RESULTS:
        add(seen, f"query:{result}", counted.get(result, 0), QUERY_CACHE.labels(result), count)
    add(seen, "query:bypass", bypass, QUERY_CACHE.labels("bypass"), count)
    near = getattr(version_store(strata_settings().cache_alias), "near", None)
    if near is None:
        return
    figures = near.figures()
    for name, counter in _NEAR_COUNTERS:
        add(seen, f"near:{name}", figures.get(name, 0), counter, count)
    if not count:
        return
    NEAR_BYTES.set(figures.get("bytes", 0))
    NEAR_ENTRIES.set(figures.get("entries", 0))


if read_caches not in tally.readers:
    tally.readers.append(read_caches)
    # What was counted before metrics were on is not news. A misconfigured cache: its
    # system check says so.
    with suppress(Exception):
        read_caches(False)
