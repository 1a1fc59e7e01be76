"""Conflicts between the roles of an inventory, found once every role is read.

Two services cannot listen on one address and port, and two of a kind that writes one
file per host (``/etc/haproxy/haproxy.cfg``, the Varnish and PostgreSQL configuration)
cannot share a host.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from ..tomlfile import Document, KeyPath
from .model import (
    Accelerator,
    AppServer,
    CacheServer,
    Database,
    DatabaseServer,
    LoadBalancer,
    Pooler,
    Sentinel,
    Traffic,
)

__all__ = ["Roles", "check_conflicts"]

# A role that writes one file per host: where it is named, the role, and its name.
_Placed = tuple[KeyPath, LoadBalancer | Accelerator | DatabaseServer, str]


@dataclass(frozen=True)
class Roles:
    """The roles read from an inventory (those with mistakes left out)."""

    load_balancers: list[LoadBalancer]
    accelerators: list[Accelerator]
    app_servers: list[AppServer]
    caches: list[CacheServer]
    sentinel: Sentinel | None
    database: Database | None
    pooler: Pooler | None


def _index(name: str) -> int:
    """The 0-based table index behind a role's name (``app3`` is the third [[app_server]])."""
    return int(name.lstrip(string.ascii_letters)) - 1


def check_conflicts(document: Document, roles: Roles, traffic: Traffic | None, tls: bool) -> None:
    """Record a problem for two services on one address and port, or two of a kind that
    writes one file per host."""
    taken: dict[tuple[str, int], str] = {}

    def claim(address: str, port: int, path: KeyPath, what: str) -> None:
        """Take ``address:port`` for ``what``, or report who has it."""
        key = (address, port)
        if key in taken:
            document.problem(path, f"{address}:{port} is already taken by {taken[key]}")
        else:
            taken[key] = what

    for lb in roles.load_balancers:
        i = _index(lb.name)
        # The public frontends may bind another address ("listen"), but they still
        # take these ports on the host.
        claim(lb.host.address, lb.port, ("load_balancer", i, "port"), f"{lb.name} (HTTP)")
        if tls:
            claim(
                lb.host.address, lb.tls_port, ("load_balancer", i, "tls_port"), f"{lb.name} (HTTPS)"
            )
        if traffic is None or traffic.app_pool == "haproxy":
            claim(
                lb.host.address,
                lb.pool_port,
                ("load_balancer", i, "pool_port"),
                f"{lb.name} (pool)",
            )
    for a in roles.accelerators:
        i = _index(a.name)
        claim(a.host.address, a.port, ("accelerator", i, "port"), a.name)
        if traffic and traffic.proxy_protocol:
            claim(
                a.host.address, a.purge_port, ("accelerator", i, "purge_port"), f"{a.name} (purges)"
            )
    for app in roles.app_servers:
        claim(app.host.address, app.port, ("app_server", _index(app.name), "port"), app.name)
    for cache in roles.caches:
        claim(cache.host.address, cache.port, ("cache", _index(cache.name), "port"), cache.name)
    sentinel = roles.sentinel
    if sentinel:
        for host in sentinel.hosts:
            claim(host.address, sentinel.port, ("sentinel", "port"), f"sentinel on {host.name}")
    database = roles.database
    if database:
        primary = database.primary
        claim(primary.host.address, primary.port, ("database", "port"), "the database primary")
        for r in database.replicas:
            claim(r.host.address, r.port, ("database", "replica", _index(r.name), "port"), r.name)
    pooler = roles.pooler
    if pooler:
        claim(pooler.host.address, pooler.port, ("pooler", "port"), pooler.kind)

    # Each of these writes one file per host (/etc/haproxy/haproxy.cfg, ...).
    servers: list[_Placed] = []
    if database:
        servers = [(("database", "host"), database.primary, "the database primary")] + [
            (("database", "replica", _index(r.name), "host"), r, r.name) for r in database.replicas
        ]
    single: dict[str, list[_Placed]] = {
        "load balancer": [
            (("load_balancer", _index(x.name), "host"), x, x.name) for x in roles.load_balancers
        ],
        "accelerator": [
            (("accelerator", _index(x.name), "host"), x, x.name) for x in roles.accelerators
        ],
        "PostgreSQL server": servers,
    }
    for what, entries in single.items():
        seen: dict[str, str] = {}
        for path, entry, name in entries:
            if entry.host.name in seen:
                document.problem(
                    path,
                    f"{entry.host.name} already runs {seen[entry.host.name]}; "
                    f"expected one {what} per host",
                )
            seen.setdefault(entry.host.name, name)
