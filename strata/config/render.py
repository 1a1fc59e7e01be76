"""From an inventory to the files of every host, rendered with ``strata up``'s templates.

:func:`render_inventory` is pure: it returns a :class:`Rendering` (every file's text,
host by host, and the README index), the same for the same inventory. Writing it to a
directory, with the secrets beside it, is :mod:`strata.config.output`'s job.

Each host's files mirror where they are installed (``hosts/lb1/etc/haproxy/haproxy.cfg``
goes to ``/etc/haproxy/haproxy.cfg`` on lb1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..conf import default
from ..stack.render import render_template
from ..stack.varnish import ignored_parameters_regex
from .files import OutputFile
from .model import (
    Accelerator,
    AppServer,
    CacheServer,
    DatabaseServer,
    Host,
    Inventory,
    LoadBalancer,
)
from .monitoring import exporter_files, monitoring_files

__all__ = [
    "OutputFile",
    "HostFiles",
    "Rendering",
    "render_inventory",
    "render_vcl",
    "CONFIG_DIR",
    "VCL_PATH",
    "PURGE_SECRET_FILE",
    "REDIS_AUTH_FILE",
    "SENTINEL_AUTH_FILE",
    "PURGER_UNIT",
]

CONFIG_DIR = "/etc/strata"
VCL_PATH = "/etc/varnish/strata.vcl"
PURGE_SECRET_FILE = "/etc/varnish/strata-purge-secret"
# Redis's and Sentinel's password lines, included by their configs, written from secrets.env.
REDIS_AUTH_FILE = "/etc/redis/strata-auth.conf"
SENTINEL_AUTH_FILE = "/etc/redis/strata-sentinel-auth.conf"
HAPROXY_SOCKET = "/run/haproxy/admin.sock"
REDIS_DIR = "/var/lib/redis"
# Where Strata serves personal holes (strata.urls); Varnish passes them to Django.
HOLE_PREFIX = "/-/hole/"
PURGE_LISTENER = "purge"
PURGER_UNIT = "/etc/systemd/system/strata-purger.service"


@dataclass
class HostFiles:
    """A host, the roles it plays, its files, and what to run after installing them."""

    host: Host
    roles: list[str]
    files: list[OutputFile] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)


@dataclass
class Rendering:
    """Everything ``strata config`` writes, except the secrets."""

    inventory: Inventory
    hosts: list[HostFiles]
    readme: str
    # Files for no particular host (Prometheus's, Grafana's): (path in the output, file)
    shared: list[tuple[str, OutputFile]] = field(default_factory=list)

    def files(self) -> list[tuple[str, OutputFile]]:
        """(relative path in the output directory, file) for every rendered file."""
        return [
            (f"hosts/{entry.host.name}{file.path}", file)
            for entry in self.hosts
            for file in entry.files
        ] + self.shared


# -- one function per program ------------------------------------------------------------


def render_vcl(inventory: Inventory) -> str:
    """The VCL: one text for every accelerator node (nothing in it names a node)."""
    traffic = inventory.traffic
    if traffic.app_pool == "haproxy":
        # Varnish fetches through the load balancers' app pool (health-checked, slowstart).
        lbs = inventory.load_balancers
        backends = [
            {
                "name": "pool" if len(lbs) == 1 else f"pool{i + 1}",
                "host": lb.host.address,
                "port": lb.pool_port,
            }
            for i, lb in enumerate(lbs)
        ]
    else:
        backends = [
            {"name": app.name, "host": app.host.address, "port": app.port}
            for app in inventory.app_servers
        ]
    context = {
        "backends": backends,
        "pool": traffic.app_pool,
        "health_path": inventory.site.health_path,
        "purge_secret_file": PURGE_SECRET_FILE,
        "purger_addresses": _app_addresses(inventory),
        "allowed_hosts_regex": "|".join(re.escape(h) for h in inventory.site.allowed_hosts),
        "session_cookie": inventory.site.session_cookie,
        "csrf_cookie": inventory.site.csrf_cookie,
        "grace": traffic.grace,
        "refresh_grace": traffic.refresh_grace,
        "hole_prefix": re.escape(HOLE_PREFIX),
        "ignored_parameters_regex": ignored_parameters_regex(
            default("IGNORED_PARAMETERS", "PAGE_CACHE")
        ),
        "esi": True,
    }
    if traffic.proxy_protocol:
        context["purge_listener"] = PURGE_LISTENER
    return render_template("varnish.vcl.j2", **context)


def _app_addresses(inventory: Inventory) -> list[str]:
    """The app hosts' addresses, once each, in inventory order: who may purge."""
    return list(dict.fromkeys(app.host.address for app in inventory.app_servers))


def _haproxy(inventory: Inventory, lb: LoadBalancer) -> OutputFile:
    site, traffic = inventory.site, inventory.traffic
    workers = min(app.workers for app in inventory.app_servers)
    text = render_template(
        "haproxy.cfg.j2",
        host=lb.host.address,
        bind_host=lb.listen,
        port=lb.port,
        tls=site.tls is not None,
        tls_port=lb.tls_port,
        tls_pem=site.tls_pem,
        redirect_https=site.redirect_https,
        admin_socket=HAPROXY_SOCKET,
        run_user="haproxy",
        balance=traffic.balance,
        proxy_protocol=traffic.proxy_protocol,
        accelerators=[
            {"name": a.name, "host": a.host.address, "port": a.port} for a in inventory.accelerators
        ],
        app_servers=[
            {"name": a.name, "host": a.host.address, "port": a.port, "maxconn": a.workers}
            for a in inventory.app_servers
        ],
        pool=traffic.app_pool,
        pool_port=lb.pool_port,
        workers=workers,
        health_path=site.health_path,
        slowstart=traffic.slowstart,
        metrics_host=lb.host.address,
        metrics_port=inventory.monitoring.haproxy_port,
    )
    spread = (
        "each page on one accelerator (balance uri, consistent hashing)"
        if traffic.balance == "uri-consistent"
        else "round robin over the accelerators"
    )
    what = f"HAProxy {lb.name}: public :{lb.port}"
    if site.tls:
        what += f" and TLS :{lb.tls_port}"
    what += f", {spread}"
    if traffic.app_pool == "haproxy":
        what += f"; the app pool on :{lb.pool_port} (checks, slowstart) and the backup path"
    what += f"; its Prometheus exporter on {lb.host.address}:{inventory.monitoring.haproxy_port}"
    return OutputFile("/etc/haproxy/haproxy.cfg", text, what)


def _varnish_unit(inventory: Inventory, accelerator: Accelerator) -> OutputFile:
    address = accelerator.host.address
    if inventory.traffic.proxy_protocol:
        listens = [
            f"public={address}:{accelerator.port},PROXY",
            f"{PURGE_LISTENER}={address}:{accelerator.purge_port}",
        ]
        note = (
            f"requests from HAProxy with PROXY v2 on :{accelerator.port}; "
            f"purges from the app servers, plain HTTP, on :{accelerator.purge_port}."
        )
    else:
        listens = [f"{address}:{accelerator.port}"]
        note = f"requests from HAProxy and purges from the app servers on :{accelerator.port}."
    text = render_template(
        "varnish.service.j2",
        name=accelerator.name,
        site=inventory.site.name,
        listens=listens,
        listen_note=note,
        vcl_path=VCL_PATH,
        memory=accelerator.memory,
    )
    return OutputFile(
        "/etc/systemd/system/varnish.service",
        text,
        f"systemd unit: varnishd {' '.join('-a ' + x for x in listens)}, {accelerator.memory}",
    )


def _app_server_files(inventory: Inventory, app: AppServer) -> list[OutputFile]:
    site = inventory.site
    if app.kind == "gunicorn":
        template, suffix, implementation = "gunicorn.conf.py.j2", "gunicorn.conf.py", "Gunicorn"
    else:
        template, suffix, implementation = "uwsgi.ini.j2", "uwsgi.ini", "uWSGI"
    # As under strata up: Strata's application loads the site's (STRATA_WSGI_APPLICATION,
    # in the unit) and adds static files from STATIC_ROOT and error logging.
    wsgi_app = "strata.stack.wsgi:application"
    config_path = f"{CONFIG_DIR}/{app.name}.{suffix}"
    config = render_template(
        template,
        name=app.name,
        host=app.host.address,
        port=app.port,
        workers=app.workers,
        timeout=app.timeout,
        project_dir=site.project_dir,
        wsgi_app=wsgi_app,
        no_control_socket=True,
    )
    unit = render_template(
        "appserver.service.j2",
        name=app.name,
        site=site.name,
        kind=app.kind,
        implementation=implementation,
        user=site.user,
        project_dir=site.project_dir,
        virtualenv=site.virtualenv,
        settings_module=site.settings_module,
        config_dir=CONFIG_DIR,
        config_path=config_path,
        wsgi_app=site.wsgi_app,
    )
    return [
        OutputFile(
            config_path,
            config,
            f"{implementation} {app.name}: {app.host.address}:{app.port}, {app.workers} workers",
        ),
        OutputFile(
            f"/etc/systemd/system/strata-{app.name}.service",
            unit,
            f"systemd unit of {app.name} (DJANGO_SETTINGS_MODULE=strata_settings, secrets.env)",
        ),
    ]


def _purger_unit(inventory: Inventory, host: Host) -> OutputFile:
    """``strata-purger.service``: the invalidation bus's purger on an app host, with the
    app servers' settings and secrets (one delivers, the others stand by)."""
    site = inventory.site
    text = render_template(
        "purger.service.j2",
        host=host.name,
        site=site.name,
        user=site.user,
        project_dir=site.project_dir,
        virtualenv=site.virtualenv,
        config_dir=CONFIG_DIR,
    )
    return OutputFile(
        PURGER_UNIT,
        text,
        "systemd unit of the purger: `python -m django strata_purger`, the app servers' "
        "settings and secrets; delivers the invalidation bus (or stands by)",
    )


def render_settings(inventory: Inventory) -> str:
    """The Django settings block (``strata_settings.py``), the same on every app host."""
    site, db, pooler = inventory.site, inventory.database, inventory.pooler
    if inventory.cache_kind == "redis":
        cache_url = inventory.cache_primary.url
    else:
        cache_url = "memcached://" + ",".join(
            f"{c.host.address}:{c.port}" for c in inventory.caches
        )
    databases = []
    if pooler:
        databases.append(
            {"alias": "default", "host": pooler.host.address, "port": pooler.port, "name": db.name}
        )
        for replica in db.replicas:
            databases.append(
                {
                    "alias": replica.name,
                    "host": pooler.host.address,
                    "port": pooler.port,
                    # pgbouncer's name for the replica's database (pgbouncer.ini)
                    "name": f"{db.name}_{replica.name}",
                }
            )
    else:
        for server in (db.primary, *db.replicas):
            databases.append(
                {
                    "alias": "default" if server.role == "primary" else server.name,
                    "host": server.host.address,
                    "port": server.port,
                    "name": db.name,
                }
            )
    sentinel = _sentinel_settings(inventory)
    return render_template(
        "strata_settings.py.j2",
        site=site.name,
        source=inventory.source,
        settings_module=site.settings_module,
        config_dir=CONFIG_DIR,
        first_party_imports=[
            f"from {site.settings_module} import *  # noqa: F403 (the site's settings first)",
            # env.cache_from_url builds the cache, unless Sentinel names the primary.
            *(["from strata import env"] if sentinel is None else []),
        ],
        allowed_hosts=site.allowed_hosts,
        server_names=site.server_names,
        tls=site.tls is not None,
        cache_kind=inventory.cache_kind,
        cache_url=cache_url,
        sentinel=sentinel,
        databases=databases,
        user=db.user,
        pooler=pooler is not None,
        router=db.router,
        health_path=site.health_path,
        edge_ttl=site.edge_ttl,
        accelerators=[a.purge_url for a in inventory.accelerators],
        # Prometheus scrapes each app server at its own address (Host: that address)
        # and must be let into /-/metrics (INTERNAL_IPS).
        app_addresses=_app_addresses(inventory),
        monitoring_address=(
            inventory.monitoring.host.address if inventory.monitoring.host else None
        ),
    )


def _sentinel_settings(inventory: Inventory) -> dict | None:
    """What ``strata.cache.sentinel.SentinelRedisCache`` needs: every Sentinel, the name."""
    sentinel = inventory.sentinel
    if sentinel is None:
        return None
    return {
        "locations": [f"sentinel://{h.address}:{sentinel.port}" for h in sentinel.hosts],
        "service_name": sentinel.master_name,
    }


def _cache_file(inventory: Inventory, cache: CacheServer) -> OutputFile:
    site = inventory.site
    if cache.kind == "memcached":
        text = render_template(
            "memcached.conf.j2",
            site=site.name,
            name=cache.name,
            host=cache.host.address,
            port=cache.port,
            memory_mb=cache.memory,
        )
        return OutputFile(
            "/etc/memcached.conf",
            text,
            f"Memcached {cache.name}: {cache.host.address}:{cache.port}, {cache.memory} MB",
        )
    primary = inventory.cache_primary
    replicaof = None
    if cache.role == "replica":
        replicaof = {"host": primary.host.address, "port": primary.port}
    text = render_template(
        "redis.conf.j2",
        host=cache.host.address,
        port=cache.port,
        data_dir=REDIS_DIR,
        # Where Debian's redis-server.service looks for it.
        pidfile="/run/redis/redis-server.pid",
        maxmemory=cache.memory,
        replicaof=replicaof,
        auth_file=REDIS_AUTH_FILE,
    )
    what = f"Redis {cache.name}, {cache.role}: {cache.host.address}:{cache.port}, {cache.memory}"
    if replicaof:
        what += f", replica of {primary.name}"
    return OutputFile("/etc/redis/redis.conf", text, what)


def _sentinel_file(inventory: Inventory, host: Host) -> OutputFile:
    sentinel = inventory.sentinel
    assert sentinel is not None
    primary = inventory.cache_primary
    text = render_template(
        "sentinel.conf.j2",
        site=inventory.site.name,
        host=host.address,
        port=sentinel.port,
        master_name=sentinel.master_name,
        primary={"host": primary.host.address, "port": primary.port},
        quorum=sentinel.quorum,
        down_after_ms=sentinel.down_after_ms,
        failover_timeout_ms=sentinel.failover_timeout_ms,
        auth_file=SENTINEL_AUTH_FILE,
    )
    return OutputFile(
        "/etc/redis/sentinel.conf",
        text,
        f"Redis Sentinel on :{sentinel.port}, watching {primary.name} "
        f"(quorum {sentinel.quorum} of {len(sentinel.hosts)})",
    )


def _database_files(inventory: Inventory, server: DatabaseServer) -> list[OutputFile]:
    db = inventory.database
    base = f"/etc/postgresql/{db.version}/main"
    primary = db.primary
    conf = render_template(
        "postgresql.conf.j2",
        site=inventory.site.name,
        server={
            "name": server.name,
            "role": server.role,
            "host": server.host.address,
            "port": server.port,
        },
        primary={"host": primary.host.address, "port": primary.port},
        replicas=[{"name": r.name} for r in db.replicas],
        version=db.version,
        max_connections=db.max_connections,
    )
    # Through pgbouncer when there is one (migrations too: each runs in a transaction),
    # else straight from the app hosts.
    clients: dict[str, dict] = {}
    if inventory.pooler:
        address = inventory.pooler.host.address
        clients[address] = {"address": address, "note": "pgbouncer"}
    else:
        for app in inventory.app_servers:
            address = app.host.address
            clients.setdefault(address, {"address": address, "note": f"app host {app.host.name}"})
    servers = [{"address": s.host.address, "note": s.name} for s in (db.primary, *db.replicas)]
    hba = render_template(
        "pg_hba.conf.j2",
        site=inventory.site.name,
        version=db.version,
        database=db.name,
        user=db.user,
        clients=list(clients.values()),
        servers=servers,
    )
    if server.role == "primary":
        what = f"PostgreSQL primary on :{server.port}: listen, WAL for replicas, slots"
    else:
        what = (
            f"PostgreSQL {server.name} on :{server.port}: hot standby of the primary "
            "(primary_conninfo, slot; standby.signal from pg_basebackup -R)"
        )
    return [
        OutputFile(f"{base}/conf.d/strata.conf", conf, what),
        OutputFile(
            f"{base}/pg_hba.conf",
            hba,
            "who may connect: "
            + ("pgbouncer" if inventory.pooler else "the app hosts")
            + " to the site's database, the database servers for replication",
        ),
    ]


def _pooler_files(inventory: Inventory) -> list[OutputFile]:
    pooler, db = inventory.pooler, inventory.database
    assert pooler is not None
    ini = render_template(
        "pgbouncer.ini.j2",
        site=inventory.site.name,
        database=db.name,
        primary={"host": db.primary.host.address, "port": db.primary.port},
        replicas=[{"name": r.name, "host": r.host.address, "port": r.port} for r in db.replicas],
        host=pooler.host.address,
        port=pooler.port,
        pool_size=pooler.pool_size,
        max_client_conn=pooler.max_client_conn,
    )
    users = render_template("pgbouncer-userlist.txt.j2", site=inventory.site.name, user=db.user)
    return [
        OutputFile(
            "/etc/pgbouncer/pgbouncer.ini",
            ini,
            f"pgbouncer on :{pooler.port}, transaction mode, {pooler.pool_size} server "
            "connections per database",
        ),
        OutputFile(
            "/etc/pgbouncer/userlist.txt",
            users,
            "placeholder: put the user's SCRAM secret here (the file says how)",
            mode=0o640,
        ),
    ]


# sed's replacement for the password (\1): every server may be a replica after a failover.
_REDIS_AUTH_LINES = r"requirepass \1\nmasterauth \1"


def _auth_file_command(path: str, lines: str) -> str:
    """A shell command that writes ``lines`` (``\\1``: the Redis password) from secrets.env.

    The file is created empty with its mode and owner first, so the password is never
    readable by others, not even briefly.
    """
    return (
        f"install -m 0640 -o redis -g redis /dev/null {path} && "
        f"sed -n 's/^STRATA_REDIS_PASSWORD=\\(.*\\)/{lines}/p' secrets.env > {path}"
    )


# -- the whole directory -----------------------------------------------------------------


def render_inventory(inventory: Inventory) -> Rendering:
    """Render every host's files and the README index."""
    vcl = render_vcl(inventory)
    settings = render_settings(inventory)
    entries = []
    for host in inventory.hosts.values():
        entry = HostFiles(host, inventory.roles_of(host))
        for lb in inventory.load_balancers:
            if lb.host == host:
                entry.files.append(_haproxy(inventory, lb))
                entry.steps.append("`systemctl reload haproxy`")
        for accelerator in inventory.accelerators:
            if accelerator.host == host:
                entry.files.append(
                    OutputFile(
                        VCL_PATH,
                        vcl,
                        "the VCL, identical on every accelerator: xkey purges, "
                        "the app hosts' purge ACL, grace, ESI",
                    )
                )
                entry.files.append(_varnish_unit(inventory, accelerator))
                entry.steps.append(
                    f"Put the value of `STRATA_PURGE_SECRET` (secrets.env) alone into "
                    f"`{PURGE_SECRET_FILE}`, mode 0640, group varnish."
                )
                entry.steps.append("`systemctl daemon-reload && systemctl restart varnish`")
        apps = [app for app in inventory.app_servers if app.host == host]
        for app in apps:
            entry.files.extend(_app_server_files(inventory, app))
        if apps and inventory.bus:
            entry.files.append(_purger_unit(inventory, host))
        if apps:
            entry.files.append(
                OutputFile(
                    f"{CONFIG_DIR}/strata_settings.py",
                    settings,
                    f"Django settings block: {inventory.site.settings_module} plus caches, "
                    "databases, accelerators; secrets from the environment",
                )
            )
            entry.steps.append(
                f"Copy secrets.env to `{CONFIG_DIR}/secrets.env`, mode 0640, group "
                f"{inventory.site.user}; the project is in `{inventory.site.project_dir}`, "
                f"its virtualenv in `{inventory.site.virtualenv}`."
            )
            entry.files.append(
                OutputFile(
                    f"{CONFIG_DIR}/manage",
                    render_template(
                        "manage.sh.j2",
                        site=inventory.site.name,
                        user=inventory.site.user,
                        config_dir=CONFIG_DIR,
                        project_dir=inventory.site.project_dir,
                        virtualenv=inventory.site.virtualenv,
                    ),
                    "management commands (createsuperuser, shell, cron jobs) with the app "
                    "servers' settings and secrets: the production `strata manage`",
                    mode=0o755,
                )
            )
            names = " ".join(
                [f"strata-{app.name}" for app in apps]
                + (["strata-purger"] if inventory.bus else [])
            )
            entry.steps.append(f"`systemctl daemon-reload && systemctl enable --now {names}`")
        for cache in inventory.caches:
            if cache.host == host:
                entry.files.append(_cache_file(inventory, cache))
                if cache.kind == "redis":
                    entry.steps.append(
                        f"Write the password into `{REDIS_AUTH_FILE}` (mode 0640, owner redis), "
                        "in a directory holding a copy of secrets.env (remove it afterwards): "
                        f"`{_auth_file_command(REDIS_AUTH_FILE, _REDIS_AUTH_LINES)}`"
                    )
                service = "memcached" if cache.kind == "memcached" else "redis-server"
                entry.steps.append(f"`systemctl restart {service}`")
        if inventory.sentinel and host in inventory.sentinel.hosts:
            entry.files.append(_sentinel_file(inventory, host))
            auth_pass = f"sentinel auth-pass {inventory.sentinel.master_name} \\1"
            entry.steps.append(
                f"Write the servers' password into `{SENTINEL_AUTH_FILE}` (mode 0640, owner "
                "redis), in a directory holding a copy of secrets.env (remove it afterwards): "
                f"`{_auth_file_command(SENTINEL_AUTH_FILE, auth_pass)}`"
            )
            entry.steps.append(
                "Sentinel rewrites its file: `chown redis: /etc/redis/sentinel.conf`, then "
                "`systemctl restart redis-sentinel`"
            )
        db = inventory.database
        for server in (db.primary, *db.replicas):
            if server.host == host:
                entry.files.extend(_database_files(inventory, server))
                if server.role == "replica":
                    entry.steps.append(
                        "Make the replica with `pg_basebackup -R` (the command is in "
                        f"conf.d/strata.conf), then `systemctl restart postgresql@{db.version}-main`"
                    )
                else:
                    entry.steps.append(f"`systemctl restart postgresql@{db.version}-main`")
        if inventory.pooler and inventory.pooler.host == host:
            entry.files.extend(_pooler_files(inventory))
            entry.steps.append(
                "Fill in `userlist.txt` (it says how), then `systemctl restart pgbouncer`"
            )
        files, steps = exporter_files(inventory, host)
        entry.files += files
        entry.steps += steps
        if inventory.monitoring.host == host:
            entry.steps.append(
                "`apt-get install prometheus`, then install prometheus/prometheus.yml "
                "(top of this directory) as `/etc/prometheus/prometheus.yml` and "
                "`systemctl reload prometheus`; import grafana/strata-dashboard.json in Grafana"
            )
        entries.append(entry)
    readme = render_template(
        "config-readme.md.j2",
        inventory=inventory,
        hosts=entries,
        purge_secret_file=PURGE_SECRET_FILE,
        redis_auth_file=REDIS_AUTH_FILE,
        sentinel_auth_file=SENTINEL_AUTH_FILE,
        config_dir=CONFIG_DIR,
    )
    return Rendering(inventory, entries, readme, monitoring_files(inventory))
