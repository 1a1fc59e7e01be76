"""Which programs a stack runs, on which hosts and ports, and what stands in for a
missing one (:class:`StackPlan`); :class:`strata.stack.stack.Stack` runs the plan.

load balancer (HAProxy) → accelerator (Varnish) → app-server pool (Gunicorn/uWSGI) →
Django → cache (Redis) → database (PostgreSQL). Where a program is missing, or with
``embedded=True``, the layer falls back to what Python alone provides (SQLite, a file
cache shared by the worker processes, one app server answering directly), and the
status table says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from .appserver import APP_SERVERS
from .config import LOAD_BALANCERS, StackConfig, cache_nodes, host_names
from .errors import StackError
from .exporters import Exporter, plan_exporters
from .haproxy import HAProxy
from .hosts import Host, HostNetwork, LoopbackHosts, make_hosts
from .memcached import Memcached
from .pgbouncer import PgBouncer, find_pgbouncer
from .postgres import PostgreSQL, PostgreSQLReplica, find_postgres_bindir
from .program import Program, find_program
from .purger import Purger
from .redis import Redis
from .runstate import purge_secret
from .tls import ensure_self_signed_pem
from .varnish import Backend, Varnish, xkey_available

__all__ = ["EmbeddedLayer", "StackPlan"]

P = TypeVar("P", bound=Program)


@dataclass
class EmbeddedLayer:
    """A layer served from inside the app server's Python (no separate program)."""

    layer: str
    implementation: str
    address: str
    reason: str


class StackPlan:
    """The programs of one stack and their addresses, decided before anything starts."""

    def __init__(self, config: StackConfig):
        config.validate()
        self.config = config
        self.run_dir = config.run_dir.resolve()
        self.database: PostgreSQL | None = None
        self.replica: PostgreSQLReplica | None = None
        self.pooler: PgBouncer | None = None
        self.cache: Redis | Memcached | None = None
        self.app_servers: list[Program] = []
        self.purgers: list[Purger] = []
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
        self.exporters: list[Exporter] = []
        self.exporter_notes: list[str] = []  # an exporter that cannot run, and why
        self.purge_secret = ""
        self._plan()
        if config.exporters:
            self.exporters, self.exporter_notes = plan_exporters(
                self.accelerators,
                self.caches,
                self.database,
                config.port_of,
                lambda program: program.host,
            )

    def host(self, name: str) -> Host:
        """The host that runs ``name`` (db1, cache1, app1, edge1, lb1, ...)."""
        if self.network is None:
            return Host(name, self.config.host)
        return self.network.hosts[name]

    def _on(self, program: P, host_name: str) -> P:
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

        self.purge_secret = purge_secret(run)
        project_env = {
            "DATABASE_URL": database_url,
            "CACHE_URL": cache_url,
            **({"DATABASE_REPLICA_URL": self.replica.url} if self.replica else {}),
            "DJANGO_ALLOWED_HOSTS": ",".join(cfg.allowed_hosts),
            "STRATA_RUN_DIR": str(run),
            "STRATA_PURGE_SECRET": self.purge_secret,
            # The run's VCL lets bench requests through with this same secret.
            "STRATA_BENCH_SECRET": self.purge_secret,
        }
        if cfg.edge_ttl is not None:
            project_env["STRATA_EDGE_TTL"] = str(cfg.edge_ttl)
        self.config.project.env.update(project_env)

        server_class = APP_SERVERS[cfg.app_server]
        # ``front`` implies both were found; the explicit checks let the checker see it.
        if front and varnishd and haproxy:
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
        self._plan_purgers()
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
                    metrics_port=cfg.port_of("haproxy_metrics") if cfg.exporters else None,
                ),
                f"lb{i + 1}",
            )
            for i, address in enumerate(balancers)
        ]
        self.load_balancer, *self.more_load_balancers = balancer_programs
        self.config.project.env["STRATA_ACCELERATORS"] = ",".join(
            f"http://{v.host}:{v.port}" for v in self.accelerators
        )

    def _plan_purgers(self) -> None:
        """The invalidation bus's purger: one on a single host, one per app host on
        several (one delivers, the others stand by), beside the app servers and with
        their environment. Only with Redis: Memcached and the embedded file cache hold
        no log, and the app processes purge the accelerators themselves."""
        if not isinstance(self.cache, Redis) or not self.accelerators:
            if self.accelerators:
                cache = self.cache.implementation if self.cache else "the embedded file cache"
                self.embedded.append(
                    EmbeddedLayer(
                        "purger",
                        "none: each app process purges the accelerators itself",
                        "-",
                        f"the invalidation bus needs Redis ({cache} holds no log)",
                    )
                )
            return
        project = self.config.project
        if self.network is None:
            self.purgers.append(Purger("purger", self.run_dir, self.config.host, project))
            beside = self.app_servers[:1]
        else:
            for i, app in enumerate(self.app_servers):
                name = "purger" if i == 0 else f"purger{i + 1}"
                purger = Purger(name, self.run_dir, app.host, project)
                self.purgers.append(self._on(purger, app.name))
            beside = self.app_servers
        for purger, app in zip(self.purgers, beside, strict=False):
            purger.metrics_dir = getattr(app, "metrics_dir", None)

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
        order += self.purgers  # delivers to the accelerators; before HAProxy checks them
        order += self.load_balancers
        order += self.exporters  # for looking at the others: last
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
