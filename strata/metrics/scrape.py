"""State read when Prometheus scrapes: the invalidation bus's lag and each node's fence.

Both live in the shared cache (the bus's log in Redis, the fence's records in Strata's
cache), so the scraping process reads them for every process: they are not counted per
process, and a gauge file per worker would only repeat them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..bus import bus_log
from ..conf import strata_settings
from ..edge import fence

__all__ = ["SharedState"]

log = logging.getLogger("strata.metrics")


class SharedState(Collector):
    """``strata_bus_lag_seconds``, ``strata_bus_lag_entries`` and ``strata_fence_owed``,
    per accelerator, read at each scrape. A cache that does not answer leaves them out
    (and is logged): the rest of the page is still served."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        conf = strata_settings()
        log_ = bus_log(conf.cache_alias)
        if log_ is not None:
            lag = GaugeMetricFamily(
                "strata_bus_lag_seconds",
                "Age of the oldest change the bus has not delivered to the accelerator.",
                labels=("accelerator",),
            )
            entries = GaugeMetricFamily(
                "strata_bus_lag_entries",
                "Changes in the bus's log not yet delivered to the accelerator.",
                labels=("accelerator",),
            )
            try:
                nodes = log_.status().get("nodes") or {}
            except Exception as exc:  # noqa: BLE001 - redis-py's errors, CacheUnavailable
                log.warning("strata: bus figures unavailable for metrics (%s)", exc)
            else:
                for node, seen in sorted(nodes.items()):
                    lag.add_metric((node,), float(seen.get("lag") or 0.0))
                    entries.add_metric((node,), float(seen.get("behind") or 0))
                yield lag
                yield entries
        if not conf.accelerators:
            return
        owed = GaugeMetricFamily(
            "strata_fence_owed",
            "1 while the fence holds the accelerator out of rotation (it missed purges).",
            labels=("accelerator",),
        )
        for url in conf.accelerators:
            node = fence.node_id(url)
            try:
                held = fence.fenced(node)
            except fence.FenceUnknown:
                continue  # the cache does not answer: unknown, so not reported
            owed.add_metric((node,), 1.0 if held else 0.0)
        yield owed
