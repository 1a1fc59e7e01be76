"""What a stack runs: :class:`StackConfig` (every field defaults to the demo on port 8000),
the fixed port layout, and the limits that ``strata up``'s options check."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .appserver import APP_SERVERS, DjangoProject
from .errors import StackError
from .ports import EPHEMERAL_START

__all__ = [
    "BALANCES",
    "LOAD_BALANCERS",
    "MAX_ACCELERATORS",
    "MAX_HOSTS",
    "OFFSETS",
    "StackConfig",
    "cache_nodes",
    "demo_project",
    "host_names",
]

# Each program's port is the base port plus a fixed offset, so addresses are predictable.
OFFSETS = {
    "haproxy": 0,
    # The counters, for Prometheus (docs/monitoring.md): HAProxy's own exporter, and one
    # exporter per program (Varnish nodes from base + 51 up to base + 60).
    "haproxy_metrics": 1,
    "memcached_exporter": 12,
    "redis_exporter": 21,
    "postgres_exporter": 43,
    "varnish_exporter": 51,
    "varnish": 80,
    "pool": 90,
    "app": 101,
    "memcached": 211,
    "redis": 379,
    "tls": 443,
    "postgres": 432,
    "pgbouncer": 433,
}


# Varnish nodes take the ports from base + 80 up to the pool's (base + 90).
MAX_ACCELERATORS = OFFSETS["pool"] - OFFSETS["varnish"]
BALANCES = ("roundrobin", "uri-consistent")
MAX_HOSTS = 8
LOAD_BALANCERS = 2  # of a multi-host stack


def cache_nodes(hosts: int, cache: str) -> int:
    """Cache servers of a stack: one Redis, or a pool of memcached nodes on several hosts
    (at least three: a tag's version lives on a majority of three, docs/cache-pool.md)."""
    return max(hosts, 3) if hosts and cache == "memcached" else 1


def host_names(hosts: int, cache: str) -> list[str]:
    """The hosts of a multi-host stack, in start order of their roles."""
    caches = cache_nodes(hosts, cache)
    return (
        ["db1", "db2"]
        + [f"cache{i + 1}" for i in range(caches)]
        + [f"app{i + 1}" for i in range(hosts)]
        + [f"edge{i + 1}" for i in range(hosts)]
        + [f"lb{i + 1}" for i in range(LOAD_BALANCERS)]
    )


def demo_project() -> DjangoProject:
    """The demo site that ships with Strata ("newsroom")."""
    directory = Path(__file__).resolve().parents[2] / "demo"
    if not (directory / "manage.py").exists():
        raise StackError(
            "demo",
            f"the demo site is not at {directory}; install Strata from its repository "
            "(pip install -e .) or pass --project-dir and --settings",
        )
    return DjangoProject(directory=directory, settings_module="newsroom_site.settings")


@dataclass
class StackConfig:
    """What to run. Every field has a default that gives the demo on port 8000."""

    run_dir: Path
    project: DjangoProject
    host: str = "127.0.0.1"
    port: int = 8000
    app_servers: int = field(default_factory=lambda: os.cpu_count() or 2)
    workers: int = 2
    app_server: str = "uwsgi"
    pool: str = "haproxy"  # who balances the app servers behind Varnish: haproxy | varnish
    accelerators: int = 1  # Varnish nodes behind the load balancer
    balance: str = "roundrobin"  # how HAProxy spreads pages over them: roundrobin | uri-consistent
    cache: str = "redis"  # redis | memcached
    embedded: bool = False
    tls: bool = False
    allowed_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1", "localhost"])
    setup_commands: list[list[str]] = field(default_factory=lambda: [["migrate", "--noinput"]])
    edge_ttl: int | None = None  # exported as STRATA_EDGE_TTL; None: the settings' own
    check_path: str = "/"  # must answer 2xx or 3xx through every entrance before "up"
    # Several hosts (0: everything on ``host``): two load balancers, ``hosts`` accelerator
    # hosts and app hosts, one cache host (or ``hosts`` memcached nodes), one database host.
    hosts: int = 0
    namespaces: bool | None = None  # hosts as network namespaces (None: when root allows)
    pgbouncer: bool = False  # pgbouncer (transaction mode) between the app servers and PostgreSQL
    exporters: bool = True  # each program's counters for Prometheus (docs/monitoring.md)

    def port_of(self, role: str, index: int = 0) -> int:
        """The port of ``role`` (its ``index``-th instance)."""
        return self.port + OFFSETS[role] + index

    def validate(self) -> None:
        """Reject impossible values with a clear message."""
        if self.app_server not in APP_SERVERS:
            raise StackError(
                "config",
                f"unknown app server {self.app_server!r} (choose {' or '.join(APP_SERVERS)})",
            )
        if self.pool not in ("haproxy", "varnish"):
            raise StackError("config", f"unknown pool {self.pool!r} (choose haproxy or varnish)")
        if self.cache not in ("redis", "memcached"):
            raise StackError("config", f"unknown cache {self.cache!r} (choose redis or memcached)")
        if not 1 <= self.accelerators <= MAX_ACCELERATORS:
            raise StackError("config", f"accelerators must be between 1 and {MAX_ACCELERATORS}")
        if self.balance not in BALANCES:
            raise StackError(
                "config",
                f"unknown balance {self.balance!r} (choose {' or '.join(BALANCES)})",
            )
        if self.hosts and not 2 <= self.hosts <= MAX_HOSTS:
            raise StackError("config", f"hosts must be between 2 and {MAX_HOSTS}")
        if self.hosts and self.embedded:
            raise StackError("config", "--hosts runs the real programs: it cannot be --embedded")
        if self.pgbouncer and self.embedded:
            raise StackError("config", "--pgbouncer pools PostgreSQL: it cannot be --embedded")
        if not 1 <= self.app_servers <= 64 or not 1 <= self.workers <= 64:
            raise StackError("config", "app servers and workers must be between 1 and 64")
        top = self.port + max(OFFSETS.values()) + self.app_servers
        if self.port < 1024 or top >= EPHEMERAL_START:
            raise StackError(
                "config",
                f"base port {self.port} puts the stack on ports {self.port}..{top}; "
                f"choose a base port from 1024 to {EPHEMERAL_START - 1 - top + self.port} "
                "(ports from 32768 up are the kernel's ephemeral range)",
            )
