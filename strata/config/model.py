"""The inventory's model: the hosts of a production stack and the roles they play.

Frozen dataclasses, built by :mod:`strata.config.inventory` from a validated file and
read by :mod:`strata.config.render`; the names of roles follow ``strata up`` (``lb1``,
``varnish1``, ``app1``, ``redis1``, ``replica1``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "APP_POOLS",
    "APP_SERVER_KINDS",
    "BALANCE_MODES",
    "CACHE_KINDS",
    "CACHE_ROLES",
    "POOLER_KINDS",
    "Accelerator",
    "AppServer",
    "CacheServer",
    "Database",
    "DatabaseServer",
    "Host",
    "Inventory",
    "LoadBalancer",
    "Monitoring",
    "Pooler",
    "Sentinel",
    "Site",
    "Traffic",
]

BALANCE_MODES = ("roundrobin", "uri-consistent")
"""How HAProxy spreads requests over the accelerators."""
APP_POOLS = ("haproxy", "varnish")
"""Who balances the app servers behind the accelerators."""
APP_SERVER_KINDS = ("gunicorn", "uwsgi")
CACHE_KINDS = ("redis", "memcached")
CACHE_ROLES = ("primary", "replica")
POOLER_KINDS = ("pgbouncer",)


@dataclass(frozen=True)
class Host:
    """A machine: its name (its directory in the output) and its IPv4 address."""

    name: str
    address: str


@dataclass(frozen=True)
class Site:
    """The Django project and the public names it answers to."""

    name: str
    settings_module: str
    wsgi_app: str
    project_dir: str
    virtualenv: str
    user: str
    server_names: tuple[str, ...]
    allowed_hosts: tuple[str, ...]
    health_path: str
    edge_ttl: int
    tls: str | None  # None, "self-signed", or the path of a PEM (certificate + key)
    redirect_https: bool
    session_cookie: str
    csrf_cookie: str

    @property
    def tls_pem(self) -> str | None:
        """Where HAProxy reads the certificate and key on the load balancers."""
        if self.tls == "self-signed":
            return "/etc/haproxy/certs/strata-selfsigned.pem"
        return self.tls


@dataclass(frozen=True)
class Traffic:
    """How requests flow: over the accelerators, and from them to the app servers."""

    balance: str
    proxy_protocol: bool
    app_pool: str
    grace: str
    refresh_grace: str
    slowstart: str


@dataclass(frozen=True)
class LoadBalancer:
    """An HAProxy: public frontends, and the app-server pool the accelerators fetch from."""

    name: str
    host: Host
    port: int
    tls_port: int
    pool_port: int
    listen: str


@dataclass(frozen=True)
class Accelerator:
    """A Varnish node; every node runs the same VCL."""

    name: str
    host: Host
    port: int
    purge_port: int
    memory: str
    proxy_protocol: bool

    @property
    def purge_url(self) -> str:
        """Where the app servers send purges (the plain HTTP listener)."""
        port = self.purge_port if self.proxy_protocol else self.port
        return f"http://{self.host.address}:{port}"


@dataclass(frozen=True)
class AppServer:
    """One Gunicorn or uWSGI instance running the Django project."""

    name: str
    host: Host
    port: int
    kind: str
    workers: int
    timeout: int


@dataclass(frozen=True)
class CacheServer:
    """A Redis (primary or replica) or Memcached node."""

    name: str
    host: Host
    port: int
    kind: str
    role: str
    memory: str

    @property
    def url(self) -> str:
        """The cache URL of this node (``strata.env.cache_from_url`` reads it)."""
        if self.kind == "redis":
            return f"redis://{self.host.address}:{self.port}/0"
        return f"memcached://{self.host.address}:{self.port}"


@dataclass(frozen=True)
class Sentinel:
    """Redis Sentinels watching the cache primary."""

    hosts: tuple[Host, ...]
    port: int
    quorum: int
    master_name: str
    down_after_ms: int
    failover_timeout_ms: int


@dataclass(frozen=True)
class DatabaseServer:
    """A PostgreSQL server: the primary or a streaming replica."""

    name: str
    host: Host
    port: int
    role: str


@dataclass(frozen=True)
class Database:
    """The site's PostgreSQL database: one primary, any number of replicas."""

    name: str
    user: str
    version: int
    max_connections: int
    router: str | None
    primary: DatabaseServer
    replicas: tuple[DatabaseServer, ...]


@dataclass(frozen=True)
class Pooler:
    """pgbouncer in transaction mode between the app servers and PostgreSQL."""

    kind: str
    host: Host
    port: int
    pool_size: int
    max_client_conn: int


@dataclass(frozen=True)
class Monitoring:
    """Prometheus: the host that scrapes every layer (let into ``/-/metrics``), and how
    often; the exporters' ports on the hosts they watch (docs/monitoring.md)."""

    host: Host | None = None  # None: Prometheus runs where the inventory does not say
    scrape_interval: str = "15s"
    haproxy_port: int = 8405  # HAProxy's metrics frontend, on each load balancer
    varnish_port: int = 9131  # the Debian exporters' own defaults
    redis_port: int = 9121
    postgres_port: int = 9187
    memcached_port: int = 9150  # Strata's memcached exporter (none in Debian 12)


@dataclass(frozen=True)
class Inventory:
    """A validated inventory."""

    source: str
    hosts: dict[str, Host]
    site: Site
    traffic: Traffic
    load_balancers: tuple[LoadBalancer, ...]
    accelerators: tuple[Accelerator, ...]
    app_servers: tuple[AppServer, ...]
    caches: tuple[CacheServer, ...]
    sentinel: Sentinel | None
    database: Database
    pooler: Pooler | None
    monitoring: Monitoring = Monitoring()

    @property
    def cache_kind(self) -> str:
        """``redis`` or ``memcached`` (every cache node is of one kind)."""
        return self.caches[0].kind

    @property
    def bus(self) -> bool:
        """The invalidation bus runs: a Redis cache holds its log, and each app host runs
        ``strata-purger`` (with Memcached every writer purges the accelerators itself)."""
        return self.cache_kind == "redis"

    @property
    def cache_primary(self) -> CacheServer:
        """The Redis primary, or the first Memcached node."""
        return next((c for c in self.caches if c.role == "primary"), self.caches[0])

    def roles_of(self, host: Host) -> list[str]:
        """The roles ``host`` plays, in the order a request meets them."""
        roles = []
        if any(lb.host == host for lb in self.load_balancers):
            roles.append("load balancer")
        if any(a.host == host for a in self.accelerators):
            roles.append("accelerator")
        if any(a.host == host for a in self.app_servers):
            roles.append("app server")
            if self.bus:
                roles.append("purger")
        for cache in self.caches:
            if cache.host == host:
                roles.append(f"{cache.kind} {cache.role}" if cache.kind == "redis" else cache.kind)
        if self.sentinel and host in self.sentinel.hosts:
            roles.append("redis sentinel")
        if self.pooler and self.pooler.host == host:
            roles.append(self.pooler.kind)
        if self.database.primary.host == host:
            roles.append("postgresql primary")
        if any(r.host == host for r in self.database.replicas):
            roles.append("postgresql replica")
        if self.monitoring.host == host:
            roles.append("prometheus")
        return roles
