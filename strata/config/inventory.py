"""The inventory: one TOML file naming every host of a production stack and its roles.

:func:`load_inventory` reads and validates it into an :class:`~strata.config.model.Inventory`.
Every mistake is reported at once, each as ``file:line: key.path: what is wrong; what is
expected`` (see ``docs/config.md`` for the format; the wording is :mod:`strata.tomlfile`'s,
shared with ``strata check``'s scenarios), and raised as one :class:`InventoryError`.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from ..tomlfile import Document, Table, TomlFileError, read_text
from .conflicts import Roles, check_conflicts
from .model import (
    APP_POOLS,
    APP_SERVER_KINDS,
    BALANCE_MODES,
    CACHE_KINDS,
    CACHE_ROLES,
    POOLER_KINDS,
    Accelerator,
    AppServer,
    CacheServer,
    Database,
    DatabaseServer,
    Host,
    Inventory,
    LoadBalancer,
    Monitoring,
    Pooler,
    Sentinel,
    Site,
    Traffic,
)

__all__ = ["InventoryError", "load_inventory", "parse_inventory"]

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DURATION = re.compile(r"[1-9][0-9]*(ms|s|m|h|d)")
_SIZE = re.compile(r"[1-9][0-9]*[kmgKMG]?")
_REDIS_SIZE = re.compile(r"[1-9][0-9]*(b|kb|mb|gb)?", re.I)
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Plain names: the VCL matches Host against them exactly (no wildcards).
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_PATH_SAFE = re.compile(r"/[A-Za-z0-9_./+-]*")


class InventoryError(TomlFileError):
    """The inventory cannot be used; ``str()`` lists every problem, one per line."""


# -- the keys of each table (what each is: the format, in one place) -----------------------

SITE_KEYS = {
    "name": "a short name for the site (services and files are named after it)",
    "settings_module": "the Django settings module, e.g. mysite.settings",
    "wsgi_app": "the WSGI application, e.g. mysite.wsgi:application",
    "project_dir": "where the project lives on the app hosts",
    "virtualenv": "the virtualenv on the app hosts (default: <project_dir>/.venv)",
    "user": "the system user the app servers run as",
    "server_names": "the public host names",
    "allowed_hosts": "Django's ALLOWED_HOSTS (default: server_names)",
    "health_path": "the app servers' health check path",
    "edge_ttl": "seconds a shared page may live in Varnish",
    "tls": '"self-signed", the path of a PEM, or false',
    "redirect_https": "send http:// requests to https://",
    "session_cookie": "Django's SESSION_COOKIE_NAME",
    "csrf_cookie": "Django's CSRF_COOKIE_NAME",
}
TRAFFIC_KEYS = {
    "balance": "how HAProxy spreads requests over the accelerators",
    "proxy_protocol": "HAProxy speaks PROXY v2 to Varnish",
    "app_pool": "who balances the app servers behind Varnish",
    "grace": "how long Varnish may serve an expired page when the app servers are down",
    "refresh_grace": "how long an expired page is served while one request refreshes it",
    "slowstart": "how long a (re)joining app server takes to get its full share",
}
LB_KEYS = {
    "host": "a host from [hosts]",
    "port": "the public HTTP port",
    "tls_port": "the public HTTPS port",
    "pool_port": "the app-server pool's port",
    "listen": "the address the public frontends bind (default: the host's)",
}
ACCELERATOR_KEYS = {
    "host": "a host from [hosts]",
    "port": "Varnish's HTTP port",
    "purge_port": "the plain-HTTP listener for purges when proxy_protocol is on",
    "memory": "the cache size (malloc), e.g. 1G",
}
APP_KEYS = {
    "host": "a host from [hosts]",
    "port": "the app server's HTTP port",
    "kind": "uwsgi (the default) or gunicorn",
    "workers": "worker processes",
    "timeout": "seconds before a stuck worker is replaced",
}
CACHE_KEYS = {
    "host": "a host from [hosts]",
    "port": "the cache server's port",
    "kind": "redis or memcached",
    "role": "primary or replica (Redis only)",
    "memory": "the memory limit, e.g. 1gb (Redis) or 1024 (MB, Memcached)",
}
SENTINEL_KEYS = {
    "hosts": "hosts from [hosts] that run a Sentinel",
    "port": "the Sentinels' port",
    "quorum": "Sentinels that must agree the primary is down",
    "master_name": "the name Sentinel knows the primary by",
    "down_after_ms": "milliseconds without answer before the primary counts as down",
    "failover_timeout_ms": "milliseconds a failover may take",
}
DATABASE_KEYS = {
    "host": "a host from [hosts]",
    "port": "PostgreSQL's port",
    "name": "the database name",
    "user": "the database user",
    "version": "PostgreSQL's major version (Debian paths)",
    "max_connections": "PostgreSQL's max_connections",
    "router": "dotted path of a database router (reads to replicas)",
    "replica": "[[database.replica]] tables",
}
REPLICA_KEYS = {"host": "a host from [hosts]", "port": "PostgreSQL's port"}
POOLER_KEYS = {
    "kind": "pgbouncer",
    "host": "a host from [hosts]",
    "port": "pgbouncer's port",
    "pool_size": "server connections per database",
    "max_client_conn": "client connections pgbouncer accepts",
}
MONITORING_KEYS = {
    "host": "a host from [hosts] that runs Prometheus (let into /-/metrics)",
    "scrape_interval": 'how often Prometheus scrapes, e.g. "15s"',
}
TOP_KEYS = {
    "site": "[site]",
    "traffic": "[traffic]",
    "hosts": "[hosts]",
    "load_balancer": "[[load_balancer]]",
    "accelerator": "[[accelerator]]",
    "app_server": "[[app_server]]",
    "cache": "[[cache]]",
    "sentinel": "[sentinel]",
    "database": "[database]",
    "pooler": "[pooler]",
    "monitoring": "[monitoring]",
}


def load_inventory(path: Path) -> Inventory:
    """Read and validate the inventory at ``path``; raise :class:`InventoryError`."""
    return parse_inventory(read_text(path, InventoryError), source=str(path))


def parse_inventory(text: str, source: str = "inventory.toml") -> Inventory:
    """Validate the TOML ``text``; ``source`` names it in error messages."""
    document = Document(text, source, error=InventoryError)
    inventory = _Reader(document).inventory(source)
    document.finish()
    assert inventory is not None  # no problems: every part was read
    return inventory


class _Reader:
    """Reads the tables of one inventory into the model, recording every problem."""

    def __init__(self, document: Document):
        self.document = document
        self.hosts: dict[str, Host] = {}
        self.raw_hosts: dict = {}
        self.used: set[str] = set()

    def inventory(self, source: str) -> Inventory | None:
        """The inventory, or ``None`` when a part of it could not be read."""
        root = self.document.root(TOP_KEYS)
        self.read_hosts(root)
        site = self.site(root)
        traffic = self.traffic(root)
        load_balancers = self.load_balancers(root)
        accelerators = self.accelerators(root, bool(traffic.proxy_protocol))
        app_servers = self.app_servers(root)
        caches = self.caches(root)
        sentinel = self.sentinel(root, caches)
        database = self.database(root)
        pooler = self.pooler(root)
        monitoring = self.monitoring(root)

        roles = Roles(load_balancers, accelerators, app_servers, caches, sentinel, database, pooler)
        check_conflicts(self.document, roles, traffic, bool(site and site.tls))
        for name in self.hosts:
            if name not in self.used:
                self.document.problem(
                    ("hosts", name), "not used by any role; remove it or give it a role"
                )

        if self.document.problems or site is None or database is None:
            return None
        return Inventory(
            source=Path(source).name,
            hosts=self.hosts,
            site=site,
            traffic=traffic,
            load_balancers=tuple(load_balancers),
            accelerators=tuple(accelerators),
            app_servers=tuple(app_servers),
            caches=tuple(caches),
            sentinel=sentinel,
            database=database,
            pooler=pooler,
            monitoring=monitoring,
        )

    # -- hosts ---------------------------------------------------------------------------

    def read_hosts(self, root: Table) -> None:
        """``[hosts]``: name → IPv4 address."""
        raw_hosts = root.data.get("hosts")
        if not isinstance(raw_hosts, dict) or not raw_hosts:
            self.document.problem(
                ("hosts",), 'missing or empty [hosts]; expected name = "IPv4 address" lines'
            )
            raw_hosts = {}
        self.raw_hosts = raw_hosts
        seen_addresses: dict[str, str] = {}
        for name, address in raw_hosts.items():
            path = ("hosts", name)
            if not _NAME.fullmatch(name):
                self.document.problem(
                    path, "a host name is lower-case letters, digits and '-' (it names a directory)"
                )
                continue
            try:
                parsed = ipaddress.IPv4Address(address) if isinstance(address, str) else None
            except ValueError:
                parsed = None
            if parsed is None:
                self.document.problem(
                    path,
                    f'{address!r} is not an IPv4 address; expected one like "10.0.0.5" '
                    "(Varnish resolves names once, when the VCL compiles)",
                )
                continue
            if str(parsed) in seen_addresses:
                self.document.problem(path, f"same address as hosts.{seen_addresses[str(parsed)]}")
                continue
            seen_addresses[str(parsed)] = name
            self.hosts[name] = Host(name, str(parsed))

    def host_of(self, table: Table) -> Host | None:
        """The host that ``table["host"]`` names (and mark it used)."""
        name = table.get("host", str, expected="a host name from [hosts]")
        if name is None:
            return None
        if name not in self.hosts:
            if self.raw_hosts.get(name) is None:
                known = ", ".join(self.hosts) or "none"
                self.document.problem(
                    (*table.path, "host"), f"{name!r} is not in [hosts] (known: {known})"
                )
            return None
        self.used.add(name)
        return self.hosts[name]

    # -- the site and its traffic ----------------------------------------------------------

    def site(self, root: Table) -> Site | None:
        """``[site]``: the Django project and its public names."""
        t = root.section(
            "site", SITE_KEYS, required="the Django project (settings_module, project_dir, ...)"
        )
        if t is None:
            return None
        name = t.pattern("name", _NAME, "lower-case letters, digits and '-'", "strata")
        settings_module = t.pattern("settings_module", _MODULE, "a dotted module path")
        package = (settings_module or "site.settings").rsplit(".", 1)[0]
        wsgi_app = t.get(
            "wsgi_app",
            str,
            f"{package}.wsgi:application",
            expected='"module:callable", e.g. "mysite.wsgi:application"',
            check=lambda v: bool(re.fullmatch(rf"{_MODULE.pattern}:[A-Za-z_]\w*", v)),
        )
        project_dir = t.pattern("project_dir", _PATH_SAFE, "an absolute path")
        virtualenv = t.pattern(
            "virtualenv", _PATH_SAFE, "an absolute path", f"{project_dir or '/srv/site'}/.venv"
        )
        user = t.pattern("user", _NAME, "a system user name", "strata")
        server_names = t.strings(
            "server_names",
            expected='a list of host names, e.g. ["www.example.com"]',
            each=_is_hostname,
        )
        allowed_hosts = t.strings(
            "allowed_hosts",
            server_names,
            expected="a list of plain host names (Varnish serves exactly these)",
            each=_is_hostname,
        )
        health_path = t.pattern(
            "health_path", re.compile(r"/[A-Za-z0-9_./-]*"), "a path", "/-/health"
        )
        edge_ttl = t.integer("edge_ttl", 0, 86400, 300)
        tls_value = t.get(
            "tls",
            (str, bool),
            False,
            expected='"self-signed", the absolute path of a PEM file, or false',
            check=lambda v: v is False or v == "self-signed" or bool(_PATH_SAFE.fullmatch(str(v))),
        )
        tls = tls_value if isinstance(tls_value, str) else None
        redirect_https = t.boolean("redirect_https", tls is not None)
        cookie = re.compile(r"[A-Za-z0-9_-]+")
        session_cookie = t.pattern("session_cookie", cookie, "a cookie name", "sessionid")
        csrf_cookie = t.pattern("csrf_cookie", cookie, "a cookie name", "csrftoken")
        if redirect_https and tls is None:
            self.document.problem(
                ("site", "redirect_https"), "needs tls; set site.tls or remove this"
            )
        if None in (settings_module, project_dir, server_names, allowed_hosts):
            return None
        return Site(
            name=name,
            settings_module=settings_module,
            wsgi_app=wsgi_app,
            project_dir=project_dir.rstrip("/") or "/",
            virtualenv=virtualenv.rstrip("/"),
            user=user,
            server_names=tuple(s.lower() for s in server_names),
            allowed_hosts=tuple(s.lower() for s in allowed_hosts),
            health_path=health_path,
            edge_ttl=edge_ttl,
            tls=tls,
            redirect_https=bool(redirect_https),
            session_cookie=session_cookie,
            csrf_cookie=csrf_cookie,
        )

    def traffic(self, root: Table) -> Traffic:
        """``[traffic]`` (every key has a default)."""
        t = root.section("traffic", TRAFFIC_KEYS) or root.empty("traffic")
        duration = 'a duration such as "10s", "5m" or "1h"'
        return Traffic(
            balance=t.choice("balance", BALANCE_MODES, "roundrobin"),
            proxy_protocol=t.boolean("proxy_protocol", False),
            app_pool=t.choice("app_pool", APP_POOLS, "haproxy"),
            grace=t.pattern("grace", _DURATION, duration, "1h"),
            refresh_grace=t.pattern("refresh_grace", _DURATION, duration, "10s"),
            slowstart=t.pattern("slowstart", _DURATION, duration, "10s"),
        )

    # -- the roles, in the order a request meets them --------------------------------------

    def load_balancers(self, root: Table) -> list[LoadBalancer]:
        """``[[load_balancer]]``: the HAProxies."""
        load_balancers = []
        for i, t in enumerate(root.tables("load_balancer", LB_KEYS, required=True)):
            host = self.host_of(t)
            port = t.port("port", 80)
            tls_port = t.port("tls_port", 443)
            pool_port = t.port("pool_port", 8090)
            listen = t.get(
                "listen", str, None, expected='an IPv4 address such as "0.0.0.0"', check=_is_ipv4
            )
            if host:
                load_balancers.append(
                    LoadBalancer(
                        f"lb{i + 1}", host, port, tls_port, pool_port, listen or host.address
                    )
                )
        return load_balancers

    def accelerators(self, root: Table, proxy_protocol: bool) -> list[Accelerator]:
        """``[[accelerator]]``: the Varnish nodes."""
        accelerators = []
        for i, t in enumerate(root.tables("accelerator", ACCELERATOR_KEYS, required=True)):
            host = self.host_of(t)
            port = t.port("port", 6081)
            purge_port = t.port("purge_port", 6091)
            memory = t.pattern("memory", _SIZE, 'a size such as "256m" or "2G"', "256m")
            if host:
                accelerators.append(
                    Accelerator(f"varnish{i + 1}", host, port, purge_port, memory, proxy_protocol)
                )
        return accelerators

    def app_servers(self, root: Table) -> list[AppServer]:
        """``[[app_server]]``: uWSGI or Gunicorn instances."""
        app_servers = []
        for i, t in enumerate(root.tables("app_server", APP_KEYS, required=True)):
            host = self.host_of(t)
            port = t.port("port", 8000)
            kind = t.choice("kind", APP_SERVER_KINDS, "uwsgi")
            workers = t.integer("workers", 1, 256, 2)
            timeout = t.integer("timeout", 1, 3600, 30)
            if host:
                app_servers.append(AppServer(f"app{i + 1}", host, port, kind, workers, timeout))
        return app_servers

    def caches(self, root: Table) -> list[CacheServer]:
        """``[[cache]]``: Redis (one primary, replicas) or Memcached nodes, of one kind."""
        caches: list[CacheServer] = []
        tables = root.tables("cache", CACHE_KEYS, required=True)
        for i, t in enumerate(tables):
            host = self.host_of(t)
            kind = t.choice("kind", CACHE_KINDS, "redis")
            if kind == "memcached":
                if "role" in t.data:
                    self.document.problem(
                        (*t.path, "role"),
                        "Memcached nodes have no roles (each holds its share of the keys); "
                        'remove it, or use kind = "redis"',
                    )
                role = "primary"
                port = t.port("port", 11211)
                memory = t.get(
                    "memory",
                    (int, str),
                    "256",
                    expected="megabytes, e.g. 1024",
                    check=lambda v: str(v).isdigit() and int(v) > 0,
                )
            else:
                role = t.choice("role", CACHE_ROLES, "primary")
                port = t.port("port", 6379)
                memory = t.pattern(
                    "memory", _REDIS_SIZE, 'a size such as "256mb" or "2gb"', "256mb"
                )
            if host and kind and role:
                name = f"{kind}{i + 1}"
                caches.append(CacheServer(name, host, port, kind, role, str(memory)))
        kinds = {cache.kind for cache in caches}
        if len(kinds) > 1:
            self.document.problem(
                ("cache",), "mixes redis and memcached; expected one kind for every [[cache]]"
            )
        elif kinds == {"redis"} and all(
            t.data.get("role", "primary") in CACHE_ROLES for t in tables
        ):
            primaries = [t for t in tables if t.data.get("role", "primary") == "primary"]
            if len(primaries) != 1:
                self.document.problem(
                    ("cache",),
                    f"{len(primaries)} Redis primaries; expected exactly one (the others "
                    'role = "replica"): versions live in one authoritative place',
                )
        per_host: dict[str, int] = {}
        for i, cache in enumerate(caches):
            if cache.host.name in per_host:
                self.document.problem(
                    ("cache", i, "host"),
                    f"{cache.host.name} already runs cache[{per_host[cache.host.name] + 1}]; "
                    "expected one cache server per host",
                )
            per_host.setdefault(cache.host.name, i)
        return caches

    def sentinel(self, root: Table, caches: list[CacheServer]) -> Sentinel | None:
        """``[sentinel]``: the Redis Sentinels, three or more."""
        t = root.section("sentinel", SENTINEL_KEYS)
        if t is None:
            return None
        names = t.strings(
            "hosts",
            expected='a list of host names from [hosts], e.g. ["a", "b", "c"]',
            each=lambda s: bool(_NAME.fullmatch(s.lower())),
        )
        port = t.port("port", 26379)
        quorum = t.integer("quorum", 1, 99, (len(names or []) // 2) + 1)
        master_name = t.pattern("master_name", re.compile(r"[A-Za-z0-9_-]+"), "a name", "strata")
        down_after = t.integer("down_after_ms", 100, 600000, 5000)
        failover_timeout = t.integer("failover_timeout_ms", 1000, 3600000, 60000)
        if not any(cache.kind == "redis" for cache in caches):
            self.document.problem(("sentinel",), 'needs Redis caches ([[cache]] kind = "redis")')
        chosen: list[Host] = []
        for name in names or []:
            if name not in self.hosts:
                self.document.problem(("sentinel", "hosts"), f"{name!r} is not in [hosts]")
            elif self.hosts[name] in chosen:
                self.document.problem(("sentinel", "hosts"), f"{name!r} is listed twice")
            else:
                self.used.add(name)
                chosen.append(self.hosts[name])
        if names and len(names) < 3:
            self.document.problem(
                ("sentinel", "hosts"),
                f"{len(names)} Sentinels; expected at least 3, so that a majority still agrees "
                "after one host is lost",
            )
        if quorum and names and quorum > len(names):
            self.document.problem(
                ("sentinel", "quorum"), f"{quorum} is more than the {len(names)} Sentinels"
            )
        if not chosen or quorum is None:
            return None
        return Sentinel(tuple(chosen), port, quorum, master_name, down_after, failover_timeout)

    def database(self, root: Table) -> Database | None:
        """``[database]``: the PostgreSQL primary and its ``[[database.replica]]`` tables."""
        t = root.section(
            "database", DATABASE_KEYS, required="the PostgreSQL primary (host, port, name)"
        )
        if t is None:
            return None
        host = self.host_of(t)
        port = t.port("port", 5432)
        name = t.pattern("name", re.compile(r"[a-z_][a-z0-9_]*"), "a database name", "strata")
        user = t.pattern("user", re.compile(r"[a-z_][a-z0-9_]*"), "a user name", name or "strata")
        version = t.integer("version", 12, 99, 15)
        max_connections = t.integer("max_connections", 10, 100000, 200)
        router = t.pattern(
            "router", _MODULE, "a dotted path such as mysite.routers.ReplicaRouter", None
        )
        replicas = []
        for i, r in enumerate(t.tables("replica", REPLICA_KEYS, required=False)):
            replica_host = self.host_of(r)
            replica_port = r.port("port", 5432)
            if replica_host:
                replicas.append(
                    DatabaseServer(f"replica{i + 1}", replica_host, replica_port, "replica")
                )
        if host is None or name is None:
            return None
        return Database(
            name=name,
            user=user,
            version=version,
            max_connections=max_connections,
            router=router,
            primary=DatabaseServer("primary", host, port, "primary"),
            replicas=tuple(replicas),
        )

    def pooler(self, root: Table) -> Pooler | None:
        """``[pooler]``: pgbouncer between the app servers and PostgreSQL."""
        t = root.section("pooler", POOLER_KEYS)
        if t is None:
            return None
        kind = t.choice("kind", POOLER_KINDS, "pgbouncer")
        host = self.host_of(t)
        port = t.port("port", 6432)
        pool_size = t.integer("pool_size", 1, 10000, 20)
        max_client_conn = t.integer("max_client_conn", 1, 100000, 1000)
        if host is None:
            return None
        return Pooler(kind, host, port, pool_size, max_client_conn)

    def monitoring(self, root: Table) -> Monitoring:
        """``[monitoring]``: the Prometheus host and its scrape interval (optional)."""
        t = root.section("monitoring", MONITORING_KEYS)
        if t is None:
            return Monitoring()
        interval = t.pattern(
            "scrape_interval", re.compile(r"[1-9][0-9]*(ms|s|m)"), 'a duration like "15s"', "15s"
        )
        host = self.host_of(t) if "host" in t.data else None
        return Monitoring(host=host, scrape_interval=interval or "15s")


def _is_hostname(value: str) -> bool:
    return bool(_HOSTNAME.fullmatch(value.lower()))


def _is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True
