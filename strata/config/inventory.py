"""The inventory: one TOML file naming every host of a production stack and its roles.

:func:`load_inventory` parses and validates it into an :class:`Inventory`. Every mistake
is reported at once, each as ``file:line: key.path: what is wrong; what is expected``
(see ``docs/config.md`` for the format), and raised as one :class:`InventoryError`.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Accelerator",
    "AppServer",
    "CacheServer",
    "Database",
    "DatabaseServer",
    "Host",
    "Inventory",
    "InventoryError",
    "LoadBalancer",
    "Pooler",
    "Sentinel",
    "Site",
    "Traffic",
    "load_inventory",
    "parse_inventory",
]

BALANCE_MODES = ("roundrobin", "uri-consistent")
APP_POOLS = ("haproxy", "varnish")
APP_SERVER_KINDS = ("gunicorn", "uwsgi")
CACHE_KINDS = ("redis", "memcached")
CACHE_ROLES = ("primary", "replica")
POOLER_KINDS = ("pgbouncer",)

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DURATION = re.compile(r"[1-9][0-9]*(ms|s|m|h|d)")
_SIZE = re.compile(r"[1-9][0-9]*[kmgKMG]?")
_REDIS_SIZE = re.compile(r"[1-9][0-9]*(b|kb|mb|gb)?", re.I)
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# Plain names: the VCL matches Host against them exactly (no wildcards).
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_PATH_SAFE = re.compile(r"/[A-Za-z0-9_./+-]*")
_MISSING = object()


# -- the validated model ---------------------------------------------------------------


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

    @property
    def cache_kind(self) -> str:
        """``redis`` or ``memcached`` (every cache node is of one kind)."""
        return self.caches[0].kind

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
        return roles


# -- errors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One mistake in the inventory."""

    line: int | None
    path: str
    message: str


class InventoryError(Exception):
    """The inventory cannot be used; ``str()`` lists every problem, one per line."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.format(p) for p in problems))

    def format(self, problem: Problem) -> str:
        """``file:line: key.path: message``."""
        where = self.source + (f":{problem.line}" if problem.line else "")
        return f"{where}: {problem.path + ': ' if problem.path else ''}{problem.message}"


# -- locating keys in the text (tomllib keeps no positions) ------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\"'.-]+(?:\s*\.\s*[A-Za-z0-9_\"'-]+)*)\s*=")


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def key_lines(text: str) -> dict[tuple, int]:
    """Map key paths (``("app_server", 1, "kind")``, 0-based indexes) to line numbers.

    Good enough for error messages: table headers, arrays of tables and ``key =`` lines.
    """
    lines: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    current: tuple = ()
    in_multiline = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.count('"""') % 2 or line.count("'''") % 2:
            in_multiline = not in_multiline
            if not in_multiline:
                continue
        if in_multiline:
            continue
        header = _HEADER.match(line)
        if header:
            name = _split_key(header.group(2))
            if header.group(1) == "[[":
                base = _resolve(name, counts)
                lines.setdefault(base, number)
                index = counts.get(base, 0)
                counts[base] = index + 1
                current = (*base, index)
            else:
                current = _resolve(name, counts)
            lines.setdefault(current, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*current, *_split_key(key.group(1))), number)
    return lines


def _resolve(name: tuple, counts: dict[tuple, int]) -> tuple:
    """``database.replica`` under the latest ``[[database]]`` element, if it is an array."""
    resolved: tuple = ()
    for part in name:
        resolved = (*resolved, part)
        if resolved in counts and len(resolved) < len(name):
            resolved = (*resolved, counts[resolved] - 1)
    return resolved


def _display(path: tuple) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            text += ("." if text else "") + part
    return text


# -- reading with checks -----------------------------------------------------------------


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


class _Checker:
    """Collects problems with their line numbers while the inventory is read."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.lines = key_lines(text)
        self.problems: list[Problem] = []

    def line_of(self, path: tuple) -> int | None:
        """The line of ``path``, or of its closest enclosing table."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def problem(self, path: tuple, message: str) -> None:
        """Record a problem at ``path``."""
        self.problems.append(Problem(self.line_of(path), _display(path), message))

    def table(self, data: dict, path: tuple, known: dict[str, str]) -> _Table:
        """A table whose keys must all be in ``known`` (key → what it is, for messages)."""
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.problem(
                    (*path, key),
                    f"unknown key; {hint}expected one of: {', '.join(known)}",
                )
        return _Table(self, data, path)


class _Table:
    def __init__(self, checker: _Checker, data: dict, path: tuple):
        self.checker = checker
        self.data = data
        self.path = path

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = _MISSING,
        *,
        expected: str,
        check: Callable[[Any], bool] | None = None,
    ) -> Any:
        """The value of ``key``; on a problem, record it and return ``default`` (or None)."""
        path = (*self.path, key)
        if key not in self.data:
            if default is _MISSING:
                self.checker.problem(path, f"missing; expected {expected}")
                return None
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        right_type = isinstance(value, kinds) and not (
            isinstance(value, bool) and bool not in kinds
        )
        if not right_type or (check is not None and not check(value)):
            if isinstance(value, bool):
                shown = "true" if value else "false"
            elif isinstance(value, dict | list):
                shown = "this"
            else:
                shown = repr(value)
            self.checker.problem(path, f"{shown} ({_kind_of(value)}) is wrong; expected {expected}")
            return None if default is _MISSING else default
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        """A string that must be one of ``choices``."""
        return self.get(
            key,
            str,
            default,
            expected=" or ".join(f'"{c}"' for c in choices),
            check=lambda v: v in choices,
        )

    def port(self, key: str, default: Any = _MISSING) -> Any:
        """A TCP port from 1 to 65535."""
        return self.get(
            key, int, default, expected="a port from 1 to 65535", check=lambda v: 0 < v < 65536
        )

    def number(self, key: str, low: int, high: int, default: Any = _MISSING) -> Any:
        """A whole number in ``low..high``."""
        return self.get(
            key,
            int,
            default,
            expected=f"a whole number from {low} to {high}",
            check=lambda v: low <= v <= high,
        )

    def pattern(self, key: str, regex: re.Pattern, expected: str, default: Any = _MISSING) -> Any:
        """A string matching ``regex`` entirely."""
        return self.get(
            key, str, default, expected=expected, check=lambda v: bool(regex.fullmatch(v))
        )

    def strings(self, key: str, regex: re.Pattern, expected: str, default: Any = _MISSING) -> Any:
        """A non-empty list of strings, each matching ``regex``."""
        return self.get(
            key,
            list,
            default,
            expected=expected,
            check=lambda v: (
                bool(v) and all(isinstance(s, str) and regex.fullmatch(s.lower()) for s in v)
            ),
        )


def _tables(checker: _Checker, data: dict, key: str, *, required: bool) -> list[tuple]:
    """The elements of an array of tables ``[[key]]`` as (path, dict) pairs."""
    value = data.get(key, _MISSING)
    if value is _MISSING:
        if required:
            checker.problem((), f"missing [[{key}]]: at least one is needed")
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        checker.problem((key,), f"expected [[{key}]] tables, got {_kind_of(value)}")
        return []
    return [((key, i), v) for i, v in enumerate(value)]


# -- the sections ------------------------------------------------------------------------

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
    "kind": "gunicorn or uwsgi",
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
}


def load_inventory(path: Path) -> Inventory:
    """Read and validate the inventory at ``path``; raise :class:`InventoryError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InventoryError(
            str(path), [Problem(None, "", f"cannot read: {error.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise InventoryError(str(path), [Problem(None, "", "not UTF-8 text")]) from None
    return parse_inventory(text, source=str(path))


def parse_inventory(text: str, source: str = "inventory.toml") -> Inventory:
    """Validate the TOML ``text``; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(found.group(1)) if found else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise InventoryError(source, [Problem(line, "", f"not valid TOML: {message}")]) from None
    checker = _Checker(source, text)
    inventory = _read(checker, data, source)
    if checker.problems:
        # In the order of the file; problems of the whole file (no line) first.
        problems = sorted(checker.problems, key=lambda p: p.line or 0)
        raise InventoryError(source, problems)
    assert inventory is not None
    return inventory


def _read(c: _Checker, data: dict, source: str) -> Inventory | None:
    c.table(data, (), TOP_KEYS)

    # [hosts]: name → IPv4 address
    hosts: dict[str, Host] = {}
    raw_hosts = data.get("hosts")
    if not isinstance(raw_hosts, dict) or not raw_hosts:
        c.problem(("hosts",), 'missing or empty [hosts]; expected name = "IPv4 address" lines')
        raw_hosts = {}
    seen_addresses: dict[str, str] = {}
    for name, address in raw_hosts.items():
        path = ("hosts", name)
        if not _NAME.fullmatch(name):
            c.problem(
                path, "a host name is lower-case letters, digits and '-' (it names a directory)"
            )
            continue
        try:
            parsed = ipaddress.IPv4Address(address) if isinstance(address, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            c.problem(
                path,
                f'{address!r} is not an IPv4 address; expected one like "10.0.0.5" '
                "(Varnish resolves names once, when the VCL compiles)",
            )
            continue
        if str(parsed) in seen_addresses:
            c.problem(path, f"same address as hosts.{seen_addresses[str(parsed)]}")
            continue
        seen_addresses[str(parsed)] = name
        hosts[name] = Host(name, str(parsed))

    used: set[str] = set()

    def host_of(table: _Table) -> Host | None:
        """The host that ``table["host"]`` names (and mark it used)."""
        name = table.get("host", str, expected="a host name from [hosts]")
        if name is None:
            return None
        if name not in hosts:
            if raw_hosts.get(name) is None:
                known = ", ".join(hosts) or "none"
                table.checker.problem(
                    (*table.path, "host"), f"{name!r} is not in [hosts] (known: {known})"
                )
            return None
        used.add(name)
        return hosts[name]

    site = _read_site(c, data)
    traffic = _read_traffic(c, data)

    load_balancers = []
    for i, (path, raw) in enumerate(_tables(c, data, "load_balancer", required=True)):
        t = c.table(raw, path, LB_KEYS)
        host = host_of(t)
        port = t.port("port", 80)
        tls_port = t.port("tls_port", 443)
        pool_port = t.port("pool_port", 8090)
        listen = t.get(
            "listen",
            str,
            None,
            expected='an IPv4 address such as "0.0.0.0"',
            check=_is_ipv4,
        )
        if host:
            load_balancers.append(
                LoadBalancer(f"lb{i + 1}", host, port, tls_port, pool_port, listen or host.address)
            )

    accelerators = []
    for i, (path, raw) in enumerate(_tables(c, data, "accelerator", required=True)):
        t = c.table(raw, path, ACCELERATOR_KEYS)
        host = host_of(t)
        port = t.port("port", 6081)
        purge_port = t.port("purge_port", 6091)
        memory = t.pattern("memory", _SIZE, 'a size such as "256m" or "2G"', "256m")
        if host:
            accelerators.append(
                Accelerator(
                    f"varnish{i + 1}",
                    host,
                    port,
                    purge_port,
                    memory,
                    bool(traffic and traffic.proxy_protocol),
                )
            )

    app_servers = []
    for i, (path, raw) in enumerate(_tables(c, data, "app_server", required=True)):
        t = c.table(raw, path, APP_KEYS)
        host = host_of(t)
        port = t.port("port", 8000)
        kind = t.choice("kind", APP_SERVER_KINDS, "gunicorn")
        workers = t.number("workers", 1, 256, 2)
        timeout = t.number("timeout", 1, 3600, 30)
        if host:
            app_servers.append(AppServer(f"app{i + 1}", host, port, kind, workers, timeout))

    caches = _read_caches(c, data, host_of)
    sentinel = _read_sentinel(c, data, hosts, used, caches)
    database = _read_database(c, data, host_of)
    pooler = _read_pooler(c, data, host_of)

    roles = {
        "load_balancer": load_balancers,
        "accelerator": accelerators,
        "app_server": app_servers,
        "cache": caches,
        "sentinel": sentinel,
        "database": database,
        "pooler": pooler,
    }
    _check_addresses(c, roles, traffic, bool(site and site.tls))
    for name in hosts:
        if name not in used:
            c.problem(("hosts", name), "not used by any role; remove it or give it a role")

    if c.problems or site is None or traffic is None or database is None:
        return None
    return Inventory(
        source=Path(source).name,
        hosts=hosts,
        site=site,
        traffic=traffic,
        load_balancers=tuple(load_balancers),
        accelerators=tuple(accelerators),
        app_servers=tuple(app_servers),
        caches=tuple(caches),
        sentinel=sentinel,
        database=database,
        pooler=pooler,
    )


def _is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _section(c: _Checker, data: dict, key: str, *, required: str = "") -> dict | None:
    """The table ``[key]``; when ``required`` is given, its absence is that problem."""
    value = data.get(key, _MISSING)
    if value is _MISSING:
        if required:
            c.problem((), f"missing [{key}]: expected {required}")
        return None
    if not isinstance(value, dict):
        c.problem((key,), f"expected a [{key}] table, got {_kind_of(value)}")
        return None
    return value


def _read_site(c: _Checker, data: dict) -> Site | None:
    raw = _section(
        c, data, "site", required="the Django project (settings_module, project_dir, ...)"
    )
    if raw is None:
        return None
    t = c.table(raw, ("site",), SITE_KEYS)
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
        "server_names", _HOSTNAME, 'a list of host names, e.g. ["www.example.com"]'
    )
    allowed_hosts = t.strings(
        "allowed_hosts",
        _HOSTNAME,
        "a list of plain host names (Varnish serves exactly these)",
        server_names,
    )
    health_path = t.pattern("health_path", re.compile(r"/[A-Za-z0-9_./-]*"), "a path", "/-/health")
    edge_ttl = t.number("edge_ttl", 0, 86400, 300)
    tls_value = t.get(
        "tls",
        (str, bool),
        False,
        expected='"self-signed", the absolute path of a PEM file, or false',
        check=lambda v: v is False or v == "self-signed" or bool(_PATH_SAFE.fullmatch(str(v))),
    )
    tls = tls_value if isinstance(tls_value, str) else None
    redirect_https = t.get("redirect_https", bool, tls is not None, expected="true or false")
    cookie = re.compile(r"[A-Za-z0-9_-]+")
    session_cookie = t.pattern("session_cookie", cookie, "a cookie name", "sessionid")
    csrf_cookie = t.pattern("csrf_cookie", cookie, "a cookie name", "csrftoken")
    if redirect_https and tls is None:
        t.checker.problem(("site", "redirect_https"), "needs tls; set site.tls or remove this")
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


def _read_traffic(c: _Checker, data: dict) -> Traffic | None:
    raw = _section(c, data, "traffic") or {}
    t = c.table(raw, ("traffic",), TRAFFIC_KEYS)
    duration = 'a duration such as "10s", "5m" or "1h"'
    return Traffic(
        balance=t.choice("balance", BALANCE_MODES, "roundrobin"),
        proxy_protocol=t.get("proxy_protocol", bool, False, expected="true or false"),
        app_pool=t.choice("app_pool", APP_POOLS, "haproxy"),
        grace=t.pattern("grace", _DURATION, duration, "1h"),
        refresh_grace=t.pattern("refresh_grace", _DURATION, duration, "10s"),
        slowstart=t.pattern("slowstart", _DURATION, duration, "10s"),
    )


def _read_caches(c: _Checker, data: dict, host_of) -> list[CacheServer]:
    caches: list[CacheServer] = []
    tables = _tables(c, data, "cache", required=True)
    for i, (path, raw) in enumerate(tables):
        t = c.table(raw, path, CACHE_KEYS)
        host = host_of(t)
        kind = t.choice("kind", CACHE_KINDS, "redis")
        if kind == "memcached":
            if "role" in raw:
                c.problem(
                    (*path, "role"),
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
            memory = t.pattern("memory", _REDIS_SIZE, 'a size such as "256mb" or "2gb"', "256mb")
        if host and kind and role:
            name = f"{kind}{i + 1}"
            caches.append(CacheServer(name, host, port, kind, role, str(memory)))
    kinds = {cache.kind for cache in caches}
    if len(kinds) > 1:
        c.problem(("cache",), "mixes redis and memcached; expected one kind for every [[cache]]")
    elif kinds == {"redis"} and all(raw.get("role", "primary") in CACHE_ROLES for _, raw in tables):
        primaries = [
            i for i, (_, raw) in enumerate(tables) if raw.get("role", "primary") == "primary"
        ]
        if len(primaries) != 1:
            c.problem(
                ("cache",),
                f"{len(primaries)} Redis primaries; expected exactly one (the others "
                'role = "replica"): versions live in one authoritative place',
            )
    per_host: dict[str, int] = {}
    for i, cache in enumerate(caches):
        if cache.host.name in per_host:
            c.problem(
                ("cache", i, "host"),
                f"{cache.host.name} already runs cache[{per_host[cache.host.name] + 1}]; "
                "expected one cache server per host",
            )
        per_host.setdefault(cache.host.name, i)
    return caches


def _read_sentinel(c, data, hosts, used, caches) -> Sentinel | None:
    raw = _section(c, data, "sentinel")
    if raw is None:
        return None
    t = c.table(raw, ("sentinel",), SENTINEL_KEYS)
    names = t.strings("hosts", _NAME, 'a list of host names from [hosts], e.g. ["a", "b", "c"]')
    port = t.port("port", 26379)
    quorum = t.number("quorum", 1, 99, (len(names or []) // 2) + 1)
    master_name = t.pattern("master_name", re.compile(r"[A-Za-z0-9_-]+"), "a name", "strata")
    down_after = t.number("down_after_ms", 100, 600000, 5000)
    failover_timeout = t.number("failover_timeout_ms", 1000, 3600000, 60000)
    if not any(cache.kind == "redis" for cache in caches):
        c.problem(("sentinel",), 'needs Redis caches ([[cache]] kind = "redis")')
    chosen: list[Host] = []
    for name in names or []:
        if name not in hosts:
            c.problem(("sentinel", "hosts"), f"{name!r} is not in [hosts]")
        elif hosts[name] in chosen:
            c.problem(("sentinel", "hosts"), f"{name!r} is listed twice")
        else:
            used.add(name)
            chosen.append(hosts[name])
    if names and len(names) < 3:
        c.problem(
            ("sentinel", "hosts"),
            f"{len(names)} Sentinels; expected at least 3, so that a majority still agrees "
            "after one host is lost",
        )
    if quorum and names and quorum > len(names):
        c.problem(("sentinel", "quorum"), f"{quorum} is more than the {len(names)} Sentinels")
    if not chosen or quorum is None:
        return None
    return Sentinel(tuple(chosen), port, quorum, master_name, down_after, failover_timeout)


def _read_database(c: _Checker, data: dict, host_of) -> Database | None:
    raw = _section(c, data, "database", required="the PostgreSQL primary (host, port, name)")
    if raw is None:
        return None
    t = c.table(raw, ("database",), DATABASE_KEYS)
    host = host_of(t)
    port = t.port("port", 5432)
    name = t.pattern("name", re.compile(r"[a-z_][a-z0-9_]*"), "a database name", "strata")
    user = t.pattern("user", re.compile(r"[a-z_][a-z0-9_]*"), "a user name", name or "strata")
    version = t.number("version", 12, 99, 15)
    max_connections = t.number("max_connections", 10, 100000, 200)
    router = t.pattern(
        "router", _MODULE, "a dotted path such as mysite.routers.ReplicaRouter", None
    )
    replicas = []
    for i, (path, raw_replica) in enumerate(_tables(c, raw, "replica", required=False)):
        path = ("database", *path)
        r = c.table(raw_replica, path, REPLICA_KEYS)
        replica_host = host_of(r)
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


def _read_pooler(c: _Checker, data: dict, host_of) -> Pooler | None:
    raw = _section(c, data, "pooler")
    if raw is None:
        return None
    t = c.table(raw, ("pooler",), POOLER_KEYS)
    kind = t.choice("kind", POOLER_KINDS, "pgbouncer")
    host = host_of(t)
    port = t.port("port", 6432)
    pool_size = t.number("pool_size", 1, 10000, 20)
    max_client_conn = t.number("max_client_conn", 1, 100000, 1000)
    if host is None:
        return None
    return Pooler(kind, host, port, pool_size, max_client_conn)


def _index(name: str) -> int:
    """The 0-based table index behind a role's name (``app3`` is the third [[app_server]])."""
    return int(re.search(r"\d+$", name).group()) - 1


def _check_addresses(c, roles: dict, traffic: Traffic | None, tls: bool) -> None:
    """Two services cannot listen on one address and port, nor write one file on a host."""
    taken: dict[tuple[str, int], str] = {}

    def claim(address: str, port: int, path: tuple, what: str) -> None:
        """Take ``address:port`` for ``what``, or report who has it."""
        key = (address, port)
        if key in taken:
            c.problem(path, f"{address}:{port} is already taken by {taken[key]}")
        else:
            taken[key] = what

    for lb in roles["load_balancer"]:
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
    for a in roles["accelerator"]:
        i = _index(a.name)
        claim(a.host.address, a.port, ("accelerator", i, "port"), a.name)
        if traffic and traffic.proxy_protocol:
            claim(
                a.host.address, a.purge_port, ("accelerator", i, "purge_port"), f"{a.name} (purges)"
            )
    for a in roles["app_server"]:
        claim(a.host.address, a.port, ("app_server", _index(a.name), "port"), a.name)
    for cache in roles["cache"]:
        claim(cache.host.address, cache.port, ("cache", _index(cache.name), "port"), cache.name)
    sentinel = roles["sentinel"]
    if sentinel:
        for host in sentinel.hosts:
            claim(host.address, sentinel.port, ("sentinel", "port"), f"sentinel on {host.name}")
    database = roles["database"]
    if database:
        primary = database.primary
        claim(primary.host.address, primary.port, ("database", "port"), "the database primary")
        for r in database.replicas:
            claim(r.host.address, r.port, ("database", "replica", _index(r.name), "port"), r.name)
    pooler = roles["pooler"]
    if pooler:
        claim(pooler.host.address, pooler.port, ("pooler", "port"), pooler.kind)

    # Each of these writes one file per host (/etc/haproxy/haproxy.cfg, ...).
    servers = []
    if database:
        servers = [(("database", "host"), database.primary, "the database primary")] + [
            (("database", "replica", _index(r.name), "host"), r, r.name) for r in database.replicas
        ]
    single = {
        "load balancer": [
            (("load_balancer", _index(x.name), "host"), x, x.name) for x in roles["load_balancer"]
        ],
        "accelerator": [
            (("accelerator", _index(x.name), "host"), x, x.name) for x in roles["accelerator"]
        ],
        "PostgreSQL server": servers,
    }
    for what, entries in single.items():
        seen: dict[str, str] = {}
        for path, entry, name in entries:
            if entry.host.name in seen:
                c.problem(
                    path,
                    f"{entry.host.name} already runs {seen[entry.host.name]}; "
                    f"expected one {what} per host",
                )
            seen.setdefault(entry.host.name, name)
