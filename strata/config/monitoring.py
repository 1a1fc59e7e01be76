"""Monitoring in ``strata config``'s output: Prometheus's scrape configuration, the
Grafana dashboard, and each host's exporter (``docs/monitoring.md``).

Prometheus scrapes every app server directly (``/-/metrics``), HAProxy's own exporter on
each load balancer (a frontend on the private address, rendered into haproxy.cfg), and
one exporter per program: Debian's ``prometheus-varnish-exporter``,
``prometheus-redis-exporter`` and ``prometheus-postgres-exporter`` (configured in their
``/etc/default`` files, their secrets written from secrets.env by a step), and for
Memcached, which no Debian package covers, Strata's own collector
(:mod:`strata.stack.memcached_exporter`, installed as one file run by the system's
Python with ``python3-prometheus-client``).
"""

from __future__ import annotations

import inspect

from ..stack import memcached_exporter
from ..stack.prometheus import APP_METRICS_PATH, ScrapeTarget, render_scrape_config
from .dashboard import dashboard_json
from .files import OutputFile
from .model import Host, Inventory

__all__ = [
    "MEMCACHED_EXPORTER_PATH",
    "POSTGRES_PASSWORD_FILE",
    "exporter_files",
    "monitoring_files",
    "scrape_targets",
]

MEMCACHED_EXPORTER_PATH = "/usr/local/lib/strata/memcached_exporter.py"
POSTGRES_PASSWORD_FILE = "/etc/prometheus/strata-postgres-password"
REDIS_EXPORTER_DEFAULTS = "/etc/default/prometheus-redis-exporter"


def scrape_targets(inventory: Inventory) -> list[ScrapeTarget]:
    """Every address Prometheus scrapes, labelled with the program and its host."""
    m = inventory.monitoring
    targets = [
        ScrapeTarget("app", f"{a.host.address}:{a.port}", a.name, a.host.name, APP_METRICS_PATH)
        for a in inventory.app_servers
    ]
    targets += [
        ScrapeTarget("haproxy", f"{lb.host.address}:{m.haproxy_port}", lb.name, lb.host.name)
        for lb in inventory.load_balancers
    ]
    targets += [
        ScrapeTarget("varnish", f"{a.host.address}:{m.varnish_port}", a.name, a.host.name)
        for a in inventory.accelerators
    ]
    for cache in inventory.caches:
        port = m.redis_port if cache.kind == "redis" else m.memcached_port
        targets.append(
            ScrapeTarget(cache.kind, f"{cache.host.address}:{port}", cache.name, cache.host.name)
        )
    db = inventory.database
    targets += [
        ScrapeTarget("postgres", f"{s.host.address}:{m.postgres_port}", s.name, s.host.name)
        for s in (db.primary, *db.replicas)
    ]
    return targets


def monitoring_files(inventory: Inventory) -> list[tuple[str, OutputFile]]:
    """The files for the Prometheus and Grafana hosts: (path in the output, file)."""
    scrape = render_scrape_config(
        scrape_targets(inventory),
        scrape_interval=inventory.monitoring.scrape_interval,
        source=f"`strata config` from {inventory.source}",
    )
    return [
        (
            "prometheus/prometheus.yml",
            OutputFile(
                "/etc/prometheus/prometheus.yml",
                scrape,
                "Prometheus's scrape jobs: each app server's /-/metrics, HAProxy's "
                "exporter, each program's exporter",
            ),
        ),
        (
            "grafana/strata-dashboard.json",
            OutputFile(
                "strata-dashboard.json",
                dashboard_json(f"Strata: {inventory.site.name}"),
                "Grafana dashboard (import it): a row per tier, hit ratio, requests/s, "
                "p50/p99, the purge window",
            ),
        ),
    ]


def exporter_files(inventory: Inventory, host: Host) -> tuple[list[OutputFile], list[str]]:
    """The exporters of ``host``'s programs: their files, and the steps to install them."""
    m = inventory.monitoring
    files: list[OutputFile] = []
    steps: list[str] = []
    listen = host.address
    if any(a.host == host for a in inventory.accelerators):
        files.append(
            OutputFile(
                "/etc/default/prometheus-varnish-exporter",
                _defaults(
                    "prometheus-varnish-exporter",
                    f'ARGS="-web.listen-address {listen}:{m.varnish_port}"',
                ),
                f"Varnish's exporter (varnishstat) on {listen}:{m.varnish_port}",
            )
        )
        steps.append(
            "`apt-get install prometheus-varnish-exporter && systemctl restart "
            "prometheus-varnish-exporter`"
        )
    for cache in inventory.caches:
        if cache.host != host:
            continue
        if cache.kind == "redis":
            files.append(
                OutputFile(
                    REDIS_EXPORTER_DEFAULTS,
                    _defaults(
                        "prometheus-redis-exporter",
                        f'ARGS="-redis.addr redis://{cache.host.address}:{cache.port} '
                        f'-web.listen-address {listen}:{m.redis_port}"',
                        "# REDIS_PASSWORD is appended from secrets.env (README, this host).",
                    ),
                    f"Redis's exporter on {listen}:{m.redis_port}",
                    mode=0o640,
                )
            )
            steps.append(
                "`apt-get install prometheus-redis-exporter`; add the password, in a "
                "directory holding a copy of secrets.env: `sed -n "
                "'s/^STRATA_REDIS_PASSWORD=\\(.*\\)/REDIS_PASSWORD=\\1/p' secrets.env >> "
                f"{REDIS_EXPORTER_DEFAULTS} && chgrp prometheus {REDIS_EXPORTER_DEFAULTS} && "
                "systemctl restart prometheus-redis-exporter`"
            )
        else:
            files.append(
                OutputFile(
                    MEMCACHED_EXPORTER_PATH,
                    inspect.getsource(memcached_exporter),
                    "Strata's memcached exporter (Debian 12 packages none): one file, "
                    "the system's Python and python3-prometheus-client",
                )
            )
            files.append(
                OutputFile(
                    "/etc/systemd/system/strata-memcached-exporter.service",
                    _memcached_unit(
                        f"{cache.host.address}:{cache.port}", f"{listen}:{m.memcached_port}"
                    ),
                    f"systemd unit of the memcached exporter on {listen}:{m.memcached_port}",
                )
            )
            steps.append(
                "`apt-get install python3-prometheus-client && systemctl daemon-reload && "
                "systemctl enable --now strata-memcached-exporter`"
            )
    db = inventory.database
    for server in (db.primary, *db.replicas):
        if server.host != host:
            continue
        files.append(
            OutputFile(
                "/etc/default/prometheus-postgres-exporter",
                _defaults(
                    "prometheus-postgres-exporter",
                    # The user's password is read from a file, never from this one.
                    f'DATA_SOURCE_URI="127.0.0.1:{server.port}/{db.name}?sslmode=disable"',
                    f'DATA_SOURCE_USER="{db.user}"',
                    f'DATA_SOURCE_PASS_FILE="{POSTGRES_PASSWORD_FILE}"',
                    f'ARGS="--web.listen-address={listen}:{m.postgres_port} '
                    '--disable-settings-metrics"',
                ),
                f"PostgreSQL's exporter on {listen}:{m.postgres_port}, as {db.user}",
            )
        )
        steps.append(
            "`apt-get install prometheus-postgres-exporter`; its password, in a directory "
            f"holding a copy of secrets.env: `install -m 0640 -g prometheus /dev/null "
            f"{POSTGRES_PASSWORD_FILE} && sed -n 's/^DATABASE_PASSWORD=//p' secrets.env > "
            f"{POSTGRES_PASSWORD_FILE} && systemctl restart prometheus-postgres-exporter`"
        )
    return files, steps


def _defaults(package: str, *lines: str) -> str:
    header = (
        f"# {package}'s settings for Strata (read by its systemd unit).\n"
        "# Rendered by `strata config`; edit the inventory, not this file.\n"
    )
    return header + "\n".join(lines) + "\n"


def _memcached_unit(memcached: str, listen: str) -> str:
    return (
        "# Strata's memcached exporter (Debian 12 packages none; docs/monitoring.md).\n"
        "# Rendered by `strata config`; edit the inventory, not this file.\n"
        "[Unit]\n"
        "Description=Prometheus exporter for memcached (Strata)\n"
        "After=memcached.service\n\n"
        "[Service]\n"
        "DynamicUser=yes\n"
        f"ExecStart=/usr/bin/python3 {MEMCACHED_EXPORTER_PATH} "
        f"--memcached {memcached} --listen {listen}\n"
        "Restart=on-failure\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
