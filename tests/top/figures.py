"""Readings built by hand for the tests of ``strata top``: metrics written by a real
prometheus_client registry, HAProxy's ``show stat`` CSV, Varnish's counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from strata.top.model import Answer, Reading
from strata.top.samples import parse
from strata.top.sources import parse_show_stat

METRICS_URL = "http://127.0.0.1:8101/-/metrics"
VARNISH_SOURCE = "varnishstat -n /run/varnish1"
HAPROXY_SOURCE = "/run/haproxy/admin.sock show stat"


class App:
    """One app server's metrics, as ``strata.metrics`` names them."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "strata_requests",
            "requests",
            ["view", "outcome", "reason"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "strata_request_duration_seconds",
            "duration",
            ["view", "outcome"],
            buckets=(0.001, 0.01, 0.1, 1.0),
            registry=self.registry,
        )
        self.query = Counter(
            "strata_query_cache", "query cache", ["result"], registry=self.registry
        )
        self.purges = Counter(
            "strata_purges", "purges", ["accelerator", "result"], registry=self.registry
        )
        self.purge_duration = Histogram(
            "strata_purge_duration_seconds",
            "purge duration",
            ["accelerator"],
            buckets=(0.001, 0.01, 0.1, 1.0),
            registry=self.registry,
        )
        self.lag = Gauge("strata_bus_lag_seconds", "lag", ["accelerator"], registry=self.registry)

    def serve(self, outcome: str, seconds: float, times: int = 1, view: str = "home") -> None:
        """``times`` requests answered with ``outcome`` in ``seconds`` each."""
        for _ in range(times):
            self.requests.labels(view, outcome, "").inc()
            self.duration.labels(view, outcome).observe(seconds)

    def answer(self, source: str = METRICS_URL) -> Answer:
        """What ``/-/metrics`` answers now."""
        return Answer(source, parse(generate_latest(self.registry).decode()))


def show_stat(public_requests: int, fivexx: int = 0, varnish_status: str = "UP") -> dict:
    """HAProxy's ``show stat`` (the columns ``strata top`` reads), parsed."""
    header = "# pxname,svname,status,req_tot,hrsp_5xx,ttime,"
    rows = [
        f"public,FRONTEND,OPEN,{public_requests},{fivexx},,",
        f"accelerators,varnish1,{varnish_status},{public_requests},{fivexx},3,",
        "accelerators,pool-direct,no check,0,0,0,",
        f"accelerators,BACKEND,UP,{public_requests},{fivexx},3,",
        "app_pool,app1,UP,5,0,20,",
        "app_pool,app2,DOWN,5,0,20,",
        "app_pool,BACKEND,UP,10,0,20,",
    ]
    return parse_show_stat("\n".join([header, *rows]) + "\n")


def reading(at: float, **parts) -> Reading:
    """A reading at ``at`` seconds with the given sources."""
    return Reading(at=at, **parts)
