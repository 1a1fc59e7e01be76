"""The Grafana dashboard: one row per tier of the stack, built from a Python description.

:data:`TIERS` is the description: the tiers of "The Big Picture" in the order a request
meets them (load balancer, web accelerator, app server and page cache, query cache,
cache server, database), then the purge window. Each tier has panels, each panel its
PromQL queries over the metric names that ``config/prometheus.yml`` scrapes
(``docs/monitoring.md`` lists them). :func:`dashboard` turns the description into
Grafana's dashboard JSON model; ``strata config`` writes it as
``grafana/strata-dashboard.json``.

Queries use Grafana's ``$__rate_interval`` for rate windows; :func:`promql` puts a
fixed window in its place, for evaluating a panel's queries in Prometheus directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DATASOURCE_VARIABLE",
    "SCHEMA_VERSION",
    "TIERS",
    "Panel",
    "Query",
    "Tier",
    "dashboard",
    "dashboard_json",
    "promql",
]

SCHEMA_VERSION = 39  # Grafana 10.4 / 11's dashboard JSON model
DATASOURCE_VARIABLE = "datasource"
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel, and its legend (``{{label}}`` allowed)."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """A time series panel: a title, what it shows, the unit of its values."""

    title: str
    unit: str  # Grafana's unit id: percentunit, reqps, s, short, bytes
    queries: tuple[Query, ...]
    description: str


@dataclass(frozen=True)
class Tier:
    """A row of the dashboard: one tier of the stack."""

    title: str
    panels: tuple[Panel, ...]


def _ratio(hits: str, misses: str) -> str:
    """hits / (hits + misses), each a counter's rate summed over the tier."""
    h = f"sum(rate({hits}[{RATE}]))"
    m = f"sum(rate({misses}[{RATE}]))"
    return f"{h} / ({h} + {m})"


def _quantiles(histogram: str, selector: str = "", by: str = "") -> tuple[Query, ...]:
    """p50 and p99 of a Prometheus histogram."""
    group = f"le{', ' + by if by else ''}"
    legend = f" {{{{{by}}}}}" if by else ""
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({histogram}_bucket{selector}[{RATE}])))",
            f"p{int(q * 100)}{legend}",
        )
        for q in (0.5, 0.99)
    )


def _per_second(expr: str, legend: str, by: str = "") -> Query:
    group = f" by ({by})" if by else ""
    return Query(f"sum{group}(rate({expr}[{RATE}]))", legend)


APP = 'job="app"'

TIERS: tuple[Tier, ...] = (
    Tier(
        "Load balancer (HAProxy)",
        (
            Panel(
                "Requests/s",
                "reqps",
                (
                    _per_second(
                        'haproxy_frontend_http_responses_total{proxy="public"}', "{{code}}", "code"
                    ),
                ),
                "Responses of the public frontend by status class.",
            ),
            Panel(
                "Time per request (average)",
                "s",
                (
                    Query(
                        'avg by (proxy) (haproxy_backend_total_time_average_seconds{proxy=~"accelerators|app_pool"})',
                        "{{proxy}}",
                    ),
                ),
                "HAProxy keeps no histogram: its average over the last 1024 requests of "
                "each backend (the accelerators; the app pool behind them). The app "
                "server's row has p50/p99.",
            ),
            Panel(
                "Servers up",
                "short",
                (Query("sum by (proxy) (haproxy_backend_active_servers)", "{{proxy}}"),),
                "Servers in rotation per backend (health checks passing).",
            ),
        ),
    ),
    Tier(
        "Web accelerator (Varnish)",
        (
            Panel(
                "Hit ratio",
                "percentunit",
                (Query(_ratio("varnish_main_cache_hit", "varnish_main_cache_miss"), "hit ratio"),),
                "Lookups answered from Varnish's cache (varnishstat MAIN.cache_hit over "
                "hits and misses; passes are neither).",
            ),
            Panel(
                "Requests/s",
                "reqps",
                (
                    _per_second("varnish_main_client_req", "{{instance}}", "instance"),
                    _per_second("varnish_main_backend_req", "to the app servers"),
                ),
                "Client requests per node, and the fetches sent down the stack.",
            ),
            Panel(
                "Objects",
                "short",
                (Query("sum by (instance) (varnish_main_n_object)", "{{instance}}"),),
                "Objects in each node's cache.",
            ),
        ),
    ),
    Tier(
        "App server and page cache (Django)",
        (
            Panel(
                "Page cache hit ratio",
                "percentunit",
                (
                    Query(
                        _ratio(
                            f'strata_requests_total{{{APP}, outcome=~"page-hit|page-stale"}}',
                            f'strata_requests_total{{{APP}, outcome="page-miss"}}',
                        ),
                        "hit ratio",
                    ),
                ),
                "Pages the app servers answered from Strata's page cache (fresh or stale) "
                "over every cacheable page they were asked for.",
            ),
            Panel(
                "Requests/s",
                "reqps",
                (_per_second(f"strata_requests_total{{{APP}}}", "{{outcome}}", "outcome"),),
                "Requests by outcome: the X-Strata word (page-hit, page-stale, page-miss, "
                "bypass) or none.",
            ),
            Panel(
                "Time per request p50/p99",
                "s",
                _quantiles("strata_request_duration_seconds", f"{{{APP}}}"),
                "From the request's arrival in Django to its response.",
            ),
            Panel(
                "Rendering p99 by section",
                "s",
                (
                    Query(
                        "histogram_quantile(0.99, sum by (le, section) "
                        f"(rate(strata_render_section_seconds_bucket{{{APP}}}[{RATE}])))",
                        "{{section}}",
                    ),
                ),
                "Where a rendered request's time goes: database, cache, template, app.",
            ),
        ),
    ),
    Tier(
        "Query cache",
        (
            Panel(
                "Hit ratio",
                "percentunit",
                (
                    Query(
                        _ratio(
                            'strata_query_cache_total{result="hit"}',
                            'strata_query_cache_total{result="miss"}',
                        ),
                        "hit ratio",
                    ),
                ),
                "Querysets answered from the cache over those looked up.",
            ),
            Panel(
                "Lookups/s",
                "ops",
                (_per_second("strata_query_cache_total", "{{result}}", "result"),),
                "By result: hit, miss, store, bypass, error, invalidate.",
            ),
            Panel(
                "Database time per request p50/p99",
                "s",
                _quantiles("strata_render_section_seconds", '{section="db"}'),
                "What the query cache saves: time spent in the database per rendered request.",
            ),
        ),
    ),
    Tier(
        "Cache server (Redis or Memcached)",
        (
            Panel(
                "Hit ratio",
                "percentunit",
                (
                    Query(
                        f"({_ratio('redis_keyspace_hits_total', 'redis_keyspace_misses_total')})"
                        " or ("
                        + _ratio(
                            'memcached_commands_total{command="get", status="hit"}',
                            'memcached_commands_total{command="get", status="miss"}',
                        )
                        + ")",
                        "hit ratio",
                    ),
                ),
                "Key lookups found (Redis keyspace hits, or Memcached get hits).",
            ),
            Panel(
                "Commands/s",
                "ops",
                (
                    Query(
                        f"sum(rate(redis_commands_processed_total[{RATE}])) "
                        f"or sum(rate(memcached_commands_total[{RATE}]))",
                        "commands",
                    ),
                ),
                "Commands the cache servers processed.",
            ),
            Panel(
                "Cache time per request p50/p99",
                "s",
                _quantiles("strata_render_section_seconds", '{section="cache"}'),
                "Time a rendered request spent talking to the cache (seen from Django: "
                "the cache servers keep no latency histogram).",
            ),
            Panel(
                "Memory used",
                "bytes",
                (
                    Query(
                        "sum by (instance) (redis_memory_used_bytes) "
                        "or sum by (instance) (memcached_current_bytes)",
                        "{{instance}}",
                    ),
                ),
                "Bytes held by each cache server.",
            ),
        ),
    ),
    Tier(
        "Database (PostgreSQL)",
        (
            Panel(
                "Buffer cache hit ratio",
                "percentunit",
                (
                    Query(
                        _ratio("pg_stat_database_blks_hit", "pg_stat_database_blks_read"),
                        "hit ratio",
                    ),
                ),
                "Blocks found in shared buffers over blocks needed.",
            ),
            Panel(
                "Transactions/s",
                "ops",
                (
                    _per_second("pg_stat_database_xact_commit", "commits"),
                    _per_second("pg_stat_database_xact_rollback", "rollbacks"),
                ),
                "Transactions committed and rolled back, over every database.",
            ),
            Panel(
                "Connections",
                "short",
                (Query("sum by (datname) (pg_stat_database_numbackends)", "{{datname}}"),),
                "Open connections per database.",
            ),
        ),
    ),
    Tier(
        "Purge window (invalidation bus)",
        (
            Panel(
                "Bus lag",
                "s",
                (Query("max by (accelerator) (strata_bus_lag_seconds)", "{{accelerator}}"),),
                "How far behind the invalidation log each accelerator is: the purge window "
                "(docs/bus.md). Past BUS['FENCE_AFTER'] the node is fenced.",
            ),
            Panel(
                "Purges/s",
                "ops",
                (_per_second("strata_purges_total", "{{result}}", "result"),),
                "Purges sent to the accelerators, retried and failed.",
            ),
            Panel(
                "Purge time p50/p99",
                "s",
                _quantiles("strata_purge_duration_seconds"),
                "From sending a purge to the accelerator's answer.",
            ),
        ),
    ),
)


def promql(expr: str, rate_interval: str = "1m") -> str:
    """``expr`` with Grafana's ``$__rate_interval`` replaced, for Prometheus's API."""
    return expr.replace(RATE, rate_interval)


def _datasource() -> dict[str, str]:
    return {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}


def dashboard(title: str = "Strata", uid: str = "strata-stack") -> dict[str, Any]:
    """The dashboard JSON model: a row panel per tier, its panels side by side below it."""
    panels: list[dict[str, Any]] = []
    next_id = 1
    y = 0
    for tier in TIERS:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": tier.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        width = 24 // len(tier.panels)
        for i, panel in enumerate(tier.panels):
            panels.append(
                {
                    "id": next_id,
                    "type": "timeseries",
                    "title": panel.title,
                    "description": panel.description,
                    "datasource": _datasource(),
                    "gridPos": {"h": 8, "w": width, "x": i * width, "y": y},
                    "fieldConfig": {
                        "defaults": {
                            "unit": panel.unit,
                            **({"min": 0, "max": 1} if panel.unit == "percentunit" else {}),
                        },
                        "overrides": [],
                    },
                    "options": {
                        "legend": {
                            "displayMode": "list",
                            "placement": "bottom",
                            "showLegend": True,
                        },
                        "tooltip": {"mode": "multi", "sort": "none"},
                    },
                    "targets": [
                        {
                            "refId": chr(ord("A") + j),
                            "datasource": _datasource(),
                            "expr": query.expr,
                            "legendFormat": query.legend,
                            "range": True,
                        }
                        for j, query in enumerate(panel.queries)
                    ],
                }
            )
            next_id += 1
        y += 8
    return {
        "uid": uid,
        "title": title,
        "description": "Every tier of a Strata stack: hit ratio, requests/s, p50/p99, and "
        "the purge window (docs/monitoring.md).",
        "tags": ["strata"],
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "10s",
        "timezone": "browser",
        "graphTooltip": 1,
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": DATASOURCE_VARIABLE,
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "options": [],
                }
            ]
        },
        "panels": panels,
    }


def dashboard_json(title: str = "Strata") -> str:
    """:func:`dashboard` as the text of ``grafana/strata-dashboard.json``."""
    return json.dumps(dashboard(title), indent=2) + "\n"
