"""The whole stack: which programs run, in which order, on which ports; start and stop.

load balancer (HAProxy) → accelerator (Varnish) → app-server pool (Gunicorn/uWSGI) →
Django → cache (Redis) → database (PostgreSQL). Where a program is missing, or with
``embedded=True``, the layer falls back to what Python alone provides (SQLite, a file
cache shared by the worker processes, one app server answering directly), and the
status table says so.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .appserver import APP_SERVERS, DjangoProject
from .errors import StackError
from .haproxy import HAProxy
from .hosts import Host, HostNetwork, LoopbackHosts, make_hosts
from .inspection import ProjectFacts, inspect_project
from .memcached import Memcached
from .pgbouncer import PgBouncer, find_pgbouncer
from .ports import EPHEMERAL_START, port_is_free
from .postgres import PostgreSQL, PostgreSQLReplica, find_postgres_bindir
from .probes import http_get
from .program import Program, StatusRow, find_program
from .redis import Redis
from .tls import ensure_self_signed_pem
from .varnish import Backend, Varnish, xkey_available

__all__ = ["StackConfig", "Stack", "demo_project", "ENVIRONMENT_FILE", "read_environment"]

ENVIRONMENT_FILE = "environment.json"
"""In the run directory (mode 0600, it holds the purge secret): what a process of the
site needs to reach this stack, for ``strata manage`` and ``strata env``."""

log = logging.getLogger("strata.stack")

# Each program's port is the base port plus a fixed offset, so addresses are predictable.
OFFSETS = {
    "haproxy": 0,
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
    app_server: str = "gunicorn"
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


@dataclass
class EmbeddedLayer:
    """A layer served from inside the app server's Python (no separate program)."""

    layer: str
    implementation: str
    address: str
    reason: str


class Stack:
    """The programs of one stack, started in dependency order and stopped in reverse."""

    def __init__(self, config: StackConfig):
        config.validate()
        self.config = config
        self.run_dir = config.run_dir.resolve()
        self.database: PostgreSQL | None = None
        self.replica: PostgreSQLReplica | None = None
        self.pooler: PgBouncer | None = None
        self.cache: Redis | Memcached | None = None
        self.app_servers: list[Program] = []
        self.accelerators: list[Varnish] = []
        self.load_balancer: HAProxy | None = None
        self.more_load_balancers: list[HAProxy] = []
        self.caches: list[Redis | Memcached] = []
        self.network: HostNetwork | LoopbackHosts | None = None
        if config.hosts:
            config.app_servers = config.accelerators = config.hosts
            self.network = make_hosts(host_names(config.hosts, config.cache), config.namespaces)
            config.allowed_hosts = list(
                dict.fromkeys(
                    [*config.allowed_hosts, *(h.address for h in self.network.hosts.values())]
                )
            )
        self.embedded: list[EmbeddedLayer] = []
        self.notes: list[str] = []  # for the person who started it: what is not served
        self.facts: ProjectFacts | None = None
        self.started: list[Program] = []
        self.purge_secret = ""
        self._plan()

    # -- planning ----------------------------------------------------------------------
    def host(self, name: str) -> Host:
        """The host that runs ``name`` (db1, cache1, app1, edge1, lb1, ...)."""
        if self.network is None:
            return Host(name, self.config.host)
        return self.network.hosts[name]

    def _on(self, program: Program, host_name: str) -> Program:
        program.netns = self.host(host_name).netns
        return program

    def _plan_database(self, bindir) -> str:
        """PostgreSQL (pgbouncer in front if asked, a replica on several hosts), or SQLite."""
        cfg, run, embedded = self.config, self.run_dir, self.config.embedded
        if bindir is not None:
            self.database = PostgreSQL(
                "postgres", run, self.host("db1").address, cfg.port_of("postgres"), bindir
            )
            self._on(self.database, "db1")
            if self.network is not None:
                self.database.clients_network = self.network.cidr
                self.replica = PostgreSQLReplica(
                    "postgres-replica",
                    run,
                    self.host("db2").address,
                    cfg.port_of("postgres"),
                    self.database,
                )
                self._on(self.replica, "db2")
            database_url = self.database.url
            if cfg.pgbouncer:
                binary = find_pgbouncer()
                if binary is None:
                    raise StackError(
                        "pgbouncer", "not installed (scripts/bootstrap.sh installs it)"
                    )
                self.pooler = PgBouncer(
                    "pgbouncer",
                    run,
                    self.host("db1").address,
                    cfg.port_of("pgbouncer"),
                    self.database,
                    binary,
                )
                self._on(self.pooler, "db1")
                database_url = self.pooler.url  # ?pool_mode=transaction
        elif cfg.pgbouncer:
            raise StackError("config", "--pgbouncer needs PostgreSQL, which is not installed")
        else:
            sqlite = run / "db.sqlite3"
            database_url = f"sqlite:///{sqlite}"
            self.embedded.append(
                EmbeddedLayer(
                    "database",
                    "SQLite (embedded)",
                    str(sqlite),
                    "--embedded" if embedded else "PostgreSQL is not installed",
                )
            )
        return database_url

    def _plan_cache(self, cache_binary) -> str:
        """Redis, a pool of memcached nodes, or the embedded file cache; the URL."""
        cfg, run, embedded = self.config, self.run_dir, self.config.embedded
        if cache_binary and cfg.cache == "redis":
            self.cache = Redis(
                "redis", run, self.host("cache1").address, cfg.port_of("redis"), cache_binary
            )
            self.caches = [self._on(self.cache, "cache1")]
            self.cache.protected_mode = self.network is None
        elif cache_binary:
            nodes = cache_nodes(cfg.hosts, cfg.cache)
            self.caches = [
                self._on(
                    Memcached(
                        "memcached" if i == 0 else f"memcached{i + 1}",
                        run,
                        self.host(f"cache{i + 1}").address,
                        cfg.port_of("memcached"),
                        cache_binary,
                    ),
                    f"cache{i + 1}",
                )
                for i in range(nodes)
            ]
            self.cache = self.caches[0]
        if self.cache is not None:
            cache_url = self.cache.url
            if len(self.caches) > 1:
                cache_url = "memcached://" + ",".join(c.address for c in self.caches)
        else:
            cache_dir = run / "cache"
            cache_url = f"file://{cache_dir}"
            self.embedded.append(
                EmbeddedLayer(
                    "cache",
                    "file cache (embedded, shared by the workers)",
                    str(cache_dir),
                    "--embedded" if embedded else f"{cfg.cache} is not installed (not on PATH)",
                )
            )
        return cache_url

    def _plan(self) -> None:
        cfg, run = self.config, self.run_dir
        host = cfg.host
        embedded = cfg.embedded

        bindir = None if embedded else find_postgres_bindir()
        database_url = self._plan_database(bindir)
        cache_binary = (
            None
            if embedded
            else find_program("redis-server" if cfg.cache == "redis" else "memcached")
        )
        cache_url = self._plan_cache(cache_binary)

        varnishd = None if embedded else find_program("varnishd")
        haproxy = None if embedded else find_program("haproxy")
        missing = [
            name for name, found in (("varnishd", varnishd), ("haproxy", haproxy)) if not found
        ]
        if varnishd and not xkey_available():
            missing.append("the xkey vmod (varnish-modules)")
        front = not embedded and not missing
        if self.network is not None and (not front or bindir is None or cache_binary is None):
            raise StackError(
                "config",
                "--hosts runs the real programs: install Varnish (with varnish-modules), "
                "HAProxy, PostgreSQL and the cache server (scripts/bootstrap.sh)",
            )

        self.purge_secret = self._purge_secret()
        project_env = {
            "DATABASE_URL": database_url,
            "CACHE_URL": cache_url,
            **({"DATABASE_REPLICA_URL": self.replica.url} if self.replica else {}),
            "DJANGO_ALLOWED_HOSTS": ",".join(cfg.allowed_hosts),
            "STRATA_RUN_DIR": str(run),
            "STRATA_PURGE_SECRET": self.purge_secret,
        }
        if cfg.edge_ttl is not None:
            project_env["STRATA_EDGE_TTL"] = str(cfg.edge_ttl)
        self.config.project.env.update(project_env)

        server_class = APP_SERVERS[cfg.app_server]
        if front:
            for i in range(cfg.app_servers):
                name = f"app{i + 1}"
                address = host if self.network is None else self.host(name).address
                self.app_servers.append(
                    self._on(
                        server_class(
                            name, run, address, cfg.port_of("app", i), cfg.project, cfg.workers
                        ),
                        name,
                    )
                )
        else:
            # No balancer: one app server answers on the public port with all the workers.
            self.app_servers.append(
                server_class(
                    "app1", run, host, cfg.port, cfg.project, cfg.workers * cfg.app_servers
                )
            )
            self.embedded.append(
                EmbeddedLayer(
                    "accelerator + load balancer",
                    "none: the app server answers directly",
                    f"{host}:{cfg.port}",
                    "--embedded"
                    if embedded
                    else f"not installed (not on PATH): {', '.join(missing)}",
                )
            )
            return

        balancers = [self.host(f"lb{i + 1}").address for i in range(self._load_balancers)]
        if cfg.pool == "haproxy":
            backends = [
                Backend(
                    "pool" if len(balancers) == 1 else f"lb{i + 1}_pool",
                    address,
                    cfg.port_of("pool"),
                )
                for i, address in enumerate(balancers)
            ]
        else:
            backends = [Backend(a.name, a.host, a.port) for a in self.app_servers]
        purgers = [host]
        if self.network is not None:
            purgers = [a.host for a in self.app_servers]
            if isinstance(self.network, LoopbackHosts):
                purgers.append("127.0.0.1")  # the source address of loopback connections
        for i in range(cfg.accelerators):
            self.accelerators.append(
                self._on(
                    Varnish(
                        f"varnish{i + 1}",
                        run,
                        host if self.network is None else self.host(f"edge{i + 1}").address,
                        cfg.port_of("varnish", i),
                        varnishd,
                        backends=backends,
                        pool=cfg.pool,
                        health_path=cfg.project.health_path,
                        purge_secret=self.purge_secret,
                        purger_addresses=purgers,
                        allowed_hosts=cfg.allowed_hosts,
                    ),
                    f"edge{i + 1}",
                )
            )
        tls_pem = None
        if cfg.tls:
            tls_pem = ensure_self_signed_pem(run / "tls", cfg.allowed_hosts)
        balancer_programs = [
            self._on(
                HAProxy(
                    "haproxy" if i == 0 else f"haproxy{i + 1}",
                    run,
                    address,
                    cfg.port,
                    haproxy,
                    accelerators=[Backend(v.name, v.host, v.port) for v in self.accelerators],
                    app_servers=[Backend(a.name, a.host, a.port) for a in self.app_servers],
                    pool=cfg.pool,
                    pool_port=cfg.port_of("pool"),
                    workers=cfg.workers,
                    health_path=cfg.project.health_path,
                    tls_port=cfg.port_of("tls") if cfg.tls else None,
                    tls_pem=tls_pem,
                    balance=cfg.balance,
                ),
                f"lb{i + 1}",
            )
            for i, address in enumerate(balancers)
        ]
        self.load_balancer, *self.more_load_balancers = balancer_programs
        self.config.project.env["STRATA_ACCELERATORS"] = ",".join(
            f"http://{v.host}:{v.port}" for v in self.accelerators
        )

    def _purge_secret(self) -> str:
        path = self.run_dir / "purge-secret"
        if path.exists():
            return path.read_text().strip()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(24)
        path.write_text(secret + "\n")
        path.chmod(0o600)
        return secret

    @property
    def _load_balancers(self) -> int:
        return LOAD_BALANCERS if self.network is not None else 1

    @property
    def load_balancers(self) -> list[HAProxy]:
        """Every load balancer (one on a single host; two on several hosts)."""
        first = [self.load_balancer] if self.load_balancer else []
        return first + self.more_load_balancers

    @property
    def programs(self) -> list[Program]:
        """Every program, in start order."""
        order: list[Program] = []
        order += [db for db in (self.database, self.pooler, self.replica) if db]
        order += self.caches
        order += self.app_servers
        order += self.accelerators
        order += self.load_balancers
        return order

    @property
    def entrance(self) -> str:
        """The address of the (first) load balancer."""
        return self.load_balancer.host if self.load_balancer else self.config.host

    @property
    def url(self) -> str:
        """Where a person opens the site."""
        return f"http://{self.entrance}:{self.config.port}/"

    @property
    def urls(self) -> list[str]:
        """Every load balancer's address (several on a multi-host stack)."""
        if not self.more_load_balancers:
            return [self.url]
        return [f"http://{lb.host}:{lb.port}/" for lb in self.load_balancers]

    @property
    def tls_url(self) -> str | None:
        """The HTTPS address, when TLS termination is on."""
        if self.load_balancer and self.load_balancer.tls_port:
            return f"https://{self.entrance}:{self.load_balancer.tls_port}/"
        return None

    # -- running -----------------------------------------------------------------------
    def check_ports(self) -> None:
        """Fail before starting anything when a port the stack needs is taken."""
        if isinstance(self.network, HostNetwork):
            return  # fresh namespaces: nothing listens there yet
        for program in self.programs:
            for port in program.ports():
                if not port_is_free(program.host, port):
                    raise StackError(
                        program.name,
                        f"port {port} on {program.host} is already in use; stop what listens "
                        "there or choose another base port (--port)",
                    )

    def start(self, progress=None) -> None:
        """Start every layer in dependency order and wait until each answers.

        On any failure, whatever was started is stopped again before the error is raised.
        ``progress`` is called with a short message before each step.
        """
        say = progress or (lambda message: None)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        say("reading the project's settings")
        self._read_project()
        try:
            if self.network is not None:
                say(f"making {len(self.network.hosts)} hosts")
                self.network.create()
            self.check_ports()
            databases = (self.database, self.pooler, self.replica)
            for program in [p for p in (*databases, *self.caches) if p]:
                say(f"starting {program.name}")
                self._start_and_wait(program)
            for args in self._setup_commands():
                say(f"running manage.py {' '.join(args)}")
                # No accelerator runs yet, and each starts empty: there is nothing to
                # purge, and every write's purge would fail and retry into the log.
                self.manage(args, STRATA_ACCELERATORS="")
            say("starting app servers")
            for program in self.app_servers:
                program.start()
                self.started.append(program)
            for program in self.app_servers:
                program.wait_ready()
            for program in self.accelerators:
                say(f"starting {program.name}")
                self._start_and_wait(program)
            for program in self.load_balancers:
                say(f"starting {program.name}")
                self._start_and_wait(program)
            say("checking a request end to end")
            self._check_end_to_end()
        except BaseException:
            self.stop()
            raise
        self.write_state()

    def _read_project(self) -> None:
        """Refuse a project that cannot be served; take its health path; note what of
        it the stack will not serve (static files without a ``STATIC_ROOT``)."""
        self.facts = facts = inspect_project(
            self.config.project, self.config.allowed_hosts, self.run_dir / "logs" / "manage.log"
        )
        self.config.project.health_path = facts.health_path
        for program in [*self.accelerators, *self.load_balancers]:
            program.health_path = facts.health_path
        self.notes += facts.warnings
        if facts.static_url.startswith("/") and facts.static_url != "/":
            for accelerator in self.accelerators:
                accelerator.static_prefix = facts.static_url
        if facts.staticfiles and not facts.static_root:
            self.notes.append(
                "static files are not served: the settings set no STATIC_ROOT "
                "(strata.env.configure(globals()) puts it in the run directory)"
            )
        elif facts.static_root and not (facts.serves_static or facts.whitenoise):
            self.notes.append(
                f"static files under {facts.static_url} are not served: install whitenoise "
                '(pip install "django-strata[stack]")'
            )

    def _setup_commands(self) -> list[list[str]]:
        """The configured commands (``migrate`` ...), and ``collectstatic`` where the
        settings give it a ``STATIC_ROOT``: a manifest storage without its manifest
        makes every page that uses ``{% static %}`` a 500."""
        commands = list(self.config.setup_commands)
        if self.facts is not None and self.facts.collects_static:
            commands.append(["collectstatic", "--noinput", "--verbosity", "0"])
        return commands

    def _start_and_wait(self, program: Program) -> None:
        program.start()
        self.started.append(program)
        program.wait_ready()

    def _check_end_to_end(self, timeout: float = 20.0) -> None:
        """Wait until the check path answers 2xx or 3xx through the load balancer and
        through every accelerator.

        Each Varnish node probes the app-server pool, which HAProxy (started after it)
        serves: until its probes pass again, a node answers 503 on its own, so a 5xx is
        asked again until ``timeout``. A 4xx is the project's answer: the start fails at
        once, with the reason the response and the app log give.
        """
        deadline = time.monotonic() + timeout
        path = self.config.check_path
        entrances = [(lb.host, lb.port) for lb in self.load_balancers]
        entrances = entrances or [(self.config.host, self.config.port)]
        entrances += [(v.host, v.port) for v in self.accelerators]
        for host, port in entrances:
            last = ""
            while True:
                self._fail_if_one_exited()
                try:
                    answer = http_get(host, port, path, timeout=10)
                    if answer.status < 400:
                        break
                    last = f"status {answer.status}"
                    if answer.status < 500:
                        raise StackError(
                            "stack",
                            f"GET {path} through {host}:{port} answered {answer.status}: "
                            f"{self._why(answer, path)}",
                        )
                except OSError as exc:
                    last = str(exc)
                if time.monotonic() > deadline:
                    logs = ", ".join(str(p.log_path) for p in self.app_servers[:1])
                    # With DEBUG off, a project without LOGGING logs no traceback.
                    replayed = self._replay_error(path) if last.startswith("status 5") else ""
                    if replayed:
                        last += f"; in manage.py shell: {replayed}"
                        logs += f", {self.run_dir / 'logs' / 'manage.log'}"
                    raise StackError(
                        "stack", f"GET {path} through {host}:{port} failed ({last}); see {logs}"
                    )
                time.sleep(0.2)
        for balancer in self.load_balancers:
            self._wait_accelerators_up(balancer, deadline)

    def _why(self, answer, path: str) -> str:
        """A 4xx in words: who answered (``X-Strata``), the app log's last warning, and
        what to change."""
        said = answer.headers.get("x-strata", "")
        server = answer.headers.get("x-strata-server", "")
        if said:
            reason = f"X-Strata: {said}"
        elif server:
            reason = f"Django's answer ({server})"
        else:
            reason = "not Django's answer (no X-Strata-Server header)"
        logged = self._last_app_log_warning()
        if logged:
            reason += f"; app log: {logged}"
        if answer.status == 400:
            hint = (
                f"add {', '.join(self.config.allowed_hosts)} to ALLOWED_HOSTS, or end the "
                "settings with strata.env.configure(globals()) (it reads DJANGO_ALLOWED_HOSTS)"
            )
        else:
            hint = (
                f"{path} does not answer anonymous visitors with a page; name one that "
                "does with --check-path"
            )
        return f"{reason} — {hint}"

    def _last_app_log_warning(self) -> str:
        """The last WARNING or ERROR line of the first app server's log, if any."""
        if not self.app_servers:
            return ""
        try:
            lines = self.app_servers[0].log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        for line in reversed(lines[-200:]):
            if " WARNING " in line or " ERROR " in line or "Invalid HTTP_HOST" in line:
                return line.strip()[:300]
        return ""

    def _fail_if_one_exited(self) -> None:
        """Raise for a started program that has exited since it passed its probe: the
        probe may have been answered by another program that took its port after the
        port check (varnishd then exits with "Address already in use")."""
        for program in self.started:
            program.raise_if_exited()

    def _replay_error(self, path: str) -> str:
        """Why GET ``path`` fails: the exception Django raises for the same request in
        ``manage.py shell`` (its traceback goes to manage.log); '' if none is raised."""
        code = (
            "from django.test import Client; "
            f"Client().get({path!r}, HTTP_HOST={self.config.allowed_hosts[0]!r})"
        )
        try:
            self.manage(["shell", "-c", code], timeout=120)
        except StackError as error:
            return error.message.rpartition(" failed: ")[2]
        return ""

    def _wait_accelerators_up(self, balancer: HAProxy, deadline: float) -> None:
        """Wait until ``balancer`` sends traffic to every accelerator (its checks passed)."""
        names = [v.name for v in self.accelerators]
        while True:
            self._fail_if_one_exited()
            try:
                states = balancer.server_states("accelerators")
            except (OSError, ValueError):
                states = {}
            down = [name for name in names if states.get(name, "?").split()[0] != "UP"]
            if not down:
                return
            if time.monotonic() > deadline:
                raise StackError(
                    balancer.name,
                    f"HAProxy does not send traffic to {', '.join(down)} "
                    f"({', '.join(states.get(n, '?') for n in down)})",
                    balancer.log_path,
                )
            time.sleep(0.2)

    def manage(self, args: list[str], timeout: float = 600, **env: str) -> str:
        """Run a Django management command against this stack's database and cache
        (``env``: variables to set for it, over the app servers' environment)."""
        project = self.config.project
        log_path = self.run_dir / "logs" / "manage.log"
        with open(log_path, "ab") as out:
            out.write(f"$ manage.py {' '.join(args)}\n".encode())
            out.flush()
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "django", *args],
                    cwd=project.directory,
                    env=project.environment(**env),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired as exc:
                raise StackError(
                    "django", f"manage.py {args[0]} took over {timeout:.0f} s", log_path
                ) from exc
            out.write(result.stdout)
        if result.returncode != 0:
            last = result.stdout.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
            raise StackError("django", f"manage.py {' '.join(args)} failed: {last[0]}", log_path)
        return result.stdout.decode("utf-8", "replace")

    def stop(self) -> list[StackError]:
        """Stop every started program in reverse order; return the errors met on the way."""
        errors = []
        for program in reversed(self.started):
            try:
                program.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(StackError(program.name, f"could not stop: {exc}", program.log_path))
        self.started.clear()
        if self.network is not None:
            try:
                self.network.remove()
            except Exception as exc:
                errors.append(StackError("network", f"could not remove the hosts: {exc}"))
        for name in ("state.json", ENVIRONMENT_FILE):
            (self.run_dir / name).unlink(missing_ok=True)
        return errors

    def restart(self, program: Program) -> None:
        """Start ``program`` again (after it died or was stopped) and wait until ready."""
        program.stop()
        program.start()
        if program not in self.started:
            self.started.append(program)
        program.wait_ready()

    # -- reporting ---------------------------------------------------------------------
    def status_rows(self) -> list[StatusRow]:
        """The status table: real programs, then the embedded layers with their reason."""
        layers = [
            self.load_balancers,
            self.accelerators,
            self.app_servers,
            self.caches,
            [self.pooler, self.database, self.replica],
        ]
        rows = [p.status_row() for layer in layers for p in layer if p is not None]
        for layer in self.embedded:
            rows.append(
                StatusRow(
                    layer.layer,
                    layer.implementation,
                    "-",
                    layer.address,
                    None,
                    "-",
                    note=f"embedded: {layer.reason}",
                )
            )
        return rows

    def hold_path(self, program: Program) -> Path:
        """While this file exists, a supervisor leaves ``program`` stopped (fault drills)."""
        return self.run_dir / "hold" / program.name

    @staticmethod
    def _program_state(program: Program) -> dict:
        state = {
            "layer": program.layer,
            "implementation": program.implementation,
            "host": program.host,
            "port": program.port,
            "netns": program.netns,
            "pid": program.pid,
        }
        work_dir = getattr(program, "work_dir", None)
        if work_dir is not None:
            state["work_dir"] = str(work_dir)
        return state

    def write_state(self) -> None:
        """Record what runs where, for ``strata status`` and ``strata down``."""
        state = {
            "pid": os.getpid(),
            "url": self.url,
            "urls": self.urls,
            "tls_url": self.tls_url,
            "rows": [row.__dict__ for row in self.status_rows()],
            "programs": {p.name: self._program_state(p) for p in self.programs},
            "network": self.network.describe() if self.network else None,
            "cache_url": self.config.project.env.get("CACHE_URL", ""),
            "database_url": self.config.project.env.get("DATABASE_URL", ""),
        }
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=2))
        self._write_environment()

    def _write_environment(self) -> None:
        project = self.config.project
        full = project.environment()
        names = [*project.env, "DJANGO_SETTINGS_MODULE", "PYTHONPATH"]
        record = {
            "directory": str(project.directory),
            "python": sys.executable,
            "environment": {name: full[name] for name in names if name in full},
        }
        path = self.run_dir / ENVIRONMENT_FILE
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(record, indent=2))


def read_environment(run_dir: Path) -> dict:
    """What :meth:`Stack.write_state` recorded for the stack running in ``run_dir``:
    ``directory`` (the project's), ``python`` and ``environment``."""
    return json.loads((run_dir / ENVIRONMENT_FILE).read_text())
