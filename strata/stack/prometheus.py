"""Prometheus's scrape configuration for a stack: which address serves which layer's
metrics (``docs/monitoring.md``).

One renderer for both: ``strata up`` writes ``config/prometheus.yml`` in its run
directory (from what runs, :func:`targets_from_state`), and ``strata config`` writes
``prometheus/prometheus.yml`` for the inventory's hosts (:mod:`strata.config.monitoring`).
Each app server is scraped directly, at its own ``/-/metrics``: through the load balancer
every scrape would land on one machine of the pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .render import render_template

__all__ = [
    "APP_METRICS_PATH",
    "JOBS",
    "ScrapeTarget",
    "render_scrape_config",
    "targets_from_state",
]

APP_METRICS_PATH = "/-/metrics"

# Job name → what it scrapes, in the order a request meets them (the dashboard's rows
# select their series by these names).
JOBS = {
    "haproxy": "HAProxy's own exporter (load balancer)",
    "varnish": "prometheus-varnish-exporter (web accelerator)",
    "app": "the app servers' /-/metrics (page cache, query cache, purges)",
    "redis": "prometheus-redis-exporter (cache server)",
    "memcached": "Strata's memcached exporter (cache server)",
    "postgres": "prometheus-postgres-exporter (database)",
}

# An exporter's implementation (state.json) → its job.
_EXPORTER_JOBS = {
    "prometheus-varnish-exporter": "varnish",
    "prometheus-redis-exporter": "redis",
    "strata memcached exporter": "memcached",
    "prometheus-postgres-exporter": "postgres",
}


@dataclass(frozen=True)
class ScrapeTarget:
    """One address Prometheus scrapes: its job, ``instance`` label (the program's name)
    and ``host`` label (the machine it runs on: its name in an inventory, its address
    under ``strata up``)."""

    job: str
    address: str  # host:port
    instance: str
    host: str
    path: str = "/metrics"


def targets_from_state(programs: Mapping[str, Mapping]) -> list[ScrapeTarget]:
    """The targets of a running stack, from ``state.json``'s ``programs``: each app
    server, each HAProxy's metrics frontend, each exporter."""
    targets = []
    for name, program in programs.items():
        host = program["host"]
        on = host  # each host of a stack has an address of its own
        if program["layer"] == "app server":
            targets.append(
                ScrapeTarget("app", f"{host}:{program['port']}", name, on, APP_METRICS_PATH)
            )
        elif program["layer"] == "load balancer" and program.get("metrics_port"):
            targets.append(ScrapeTarget("haproxy", f"{host}:{program['metrics_port']}", name, on))
        elif program["layer"] == "metrics":
            job = _EXPORTER_JOBS.get(program["implementation"])
            exported = program.get("exports", name)
            if job:
                targets.append(ScrapeTarget(job, f"{host}:{program['port']}", exported, on))
    return targets


def render_scrape_config(
    targets: Iterable[ScrapeTarget], scrape_interval: str = "15s", source: str = "strata up"
) -> str:
    """``prometheus.yml``: one scrape job per layer, a static target per program."""
    targets = list(targets)
    jobs = []
    for job, what in JOBS.items():
        mine = [t for t in targets if t.job == job]
        if mine:
            jobs.append({"name": job, "what": what, "path": mine[0].path, "targets": mine})
    return render_template(
        "prometheus.yml.j2", jobs=jobs, scrape_interval=scrape_interval, source=source
    )
