"""The rendered directory: every host's files, one VCL, the purge ACL, the settings block, secrets."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys

import pytest

from strata.config import OutputError, parse_inventory, render_inventory, write_rendering
from strata.config.render import PURGE_SECRET_FILE, REDIS_AUTH_FILE, SENTINEL_AUTH_FILE
from tests.config.helpers import (
    EXAMPLE,
    EXAMPLE_OUTPUT,
    ONE_HOST,
    REPO,
    example,
    example_text,
    render_text,
)

EXPECTED = {
    "lb1": ["etc/haproxy/haproxy.cfg", "etc/redis/sentinel.conf"],
    "lb2": ["etc/haproxy/haproxy.cfg"],
    **{
        f"varnish{i}": [
            "etc/varnish/strata.vcl",
            "etc/systemd/system/varnish.service",
            "etc/default/prometheus-varnish-exporter",
        ]
        for i in (1, 2, 3)
    },
    **{
        f"app{i}": [
            f"etc/strata/app{i}.{'gunicorn.conf.py' if i == 4 else 'uwsgi.ini'}",
            f"etc/systemd/system/strata-app{i}.service",
            "etc/systemd/system/strata-purger.service",
            "etc/strata/strata_settings.py",
            "etc/strata/manage",
        ]
        for i in (1, 2, 3, 4)
    },
    **{
        f"cache{i}": [
            "etc/redis/redis.conf",
            "etc/redis/sentinel.conf",
            "etc/default/prometheus-redis-exporter",
        ]
        for i in (1, 2)
    },
    "db1": [
        "etc/postgresql/15/main/conf.d/strata.conf",
        "etc/postgresql/15/main/pg_hba.conf",
        "etc/pgbouncer/pgbouncer.ini",
        "etc/pgbouncer/userlist.txt",
        "etc/default/prometheus-postgres-exporter",
    ],
    "db2": [
        "etc/postgresql/15/main/conf.d/strata.conf",
        "etc/postgresql/15/main/pg_hba.conf",
        "etc/default/prometheus-postgres-exporter",
    ],
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The example inventory written to a fresh directory."""
    out = tmp_path_factory.mktemp("config") / "out"
    rendering, report = render_text(example_text(), out)
    return out, rendering, report


def files_under(root):
    """Every file under ``root``, relative, sorted."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_every_host_gets_a_directory_with_every_file_of_its_roles(rendered):
    out, _, _ = rendered
    expected = sorted(f"hosts/{host}/{path}" for host, paths in EXPECTED.items() for path in paths)
    found = [path for path in files_under(out) if path.startswith("hosts/")]
    assert found == expected
    assert (out / "README.md").is_file()
    assert (out / "secrets.env").is_file()


def test_the_readme_lists_every_host_with_its_roles_and_files(rendered):
    out, rendering, _ = rendered
    readme = (out / "README.md").read_text()
    for entry in rendering.hosts:
        row = next(
            line for line in readme.splitlines() if line.startswith(f"| [{entry.host.name}]")
        )
        assert entry.host.address in row
        assert ", ".join(entry.roles) in row
        for file in entry.files:
            assert f"`{file.path}`" in row
            assert f"(hosts/{entry.host.name}{file.path})" in readme


def test_the_vcl_is_the_same_file_on_every_accelerator(rendered):
    out, _, _ = rendered
    texts = {(out / f"hosts/varnish{i}/etc/varnish/strata.vcl").read_text() for i in (1, 2, 3)}
    assert len(texts) == 1


def test_the_purge_acl_lists_exactly_the_app_hosts(rendered):
    out, _, _ = rendered
    vcl = (out / "hosts/varnish1/etc/varnish/strata.vcl").read_text()
    acl = re.search(r"acl purgers \{(.*?)\}", vcl, re.S).group(1)
    assert re.findall(r'"([^"]+)";', acl) == [app.host.address for app in example().app_servers]


def test_the_vcl_fetches_through_every_load_balancers_app_pool(rendered):
    out, _, _ = rendered
    vcl = (out / "hosts/varnish2/etc/varnish/strata.vcl").read_text()
    backends = re.findall(r'backend (\w+) \{\s*\.host = "([^"]+)";\s*\.port = "(\d+)"', vcl)
    assert backends == [("pool1", "10.0.1.1", "8090"), ("pool2", "10.0.1.2", "8090")]
    assert "new pool = directors.round_robin();" in vcl
    assert "pool.add_backend(pool1);" in vcl and "pool.add_backend(pool2);" in vcl


def test_the_vcl_reads_the_purge_secret_from_a_file_and_purges_only_on_the_purge_listener(
    rendered,
):
    out, _, _ = rendered
    vcl = (out / "hosts/varnish1/etc/varnish/strata.vcl").read_text()
    assert f'std.fileread("{PURGE_SECRET_FILE}")' in vcl
    assert 'local.socket != "purge"' in vcl
    unit = (out / "hosts/varnish1/etc/systemd/system/varnish.service").read_text()
    assert "-a public=10.0.2.1:6081,PROXY" in unit
    assert "-a purge=10.0.2.1:6091" in unit
    assert "-f /etc/varnish/strata.vcl" in unit


def test_haproxy_spreads_by_uri_with_consistent_hashing_and_speaks_proxy_v2(rendered):
    out, _, _ = rendered
    config = (out / "hosts/lb2/etc/haproxy/haproxy.cfg").read_text()
    backend = config.split("\nbackend accelerators")[1].split("frontend app_pool_in")[0]
    assert "balance uri\n    hash-type consistent" in backend
    servers = re.findall(r"server (varnish\d) (\S+) check send-proxy-v2 check-send-proxy", backend)
    assert servers == [(f"varnish{i}", f"10.0.2.{i}:6081") for i in (1, 2, 3)]
    assert "server pool-direct 10.0.1.2:8090 backup" in backend
    assert "slowstart 10s" in config
    assert "ssl crt /etc/haproxy/certs/news.example.com.pem" in config
    assert "http-request redirect scheme https code 301 unless { ssl_fc }" in config


def test_roundrobin_without_proxy_protocol_purges_on_the_public_port(tmp_path):
    text = (
        example_text()
        .replace('balance = "uri-consistent"', 'balance = "roundrobin"')
        .replace("proxy_protocol = true", "proxy_protocol = false")
    )
    rendering, _ = render_text(text, tmp_path / "out")
    config = (tmp_path / "out/hosts/lb1/etc/haproxy/haproxy.cfg").read_text()
    assert "balance roundrobin" in config.split("\nbackend accelerators")[1]
    assert "send-proxy" not in config
    vcl = (tmp_path / "out/hosts/varnish1/etc/varnish/strata.vcl").read_text()
    assert "local.socket" not in vcl
    settings = (tmp_path / "out/hosts/app1/etc/strata/strata_settings.py").read_text()
    assert '"http://10.0.2.1:6081",' in settings


def test_the_settings_block_lists_every_accelerator_for_purges(rendered):
    out, _, _ = rendered
    settings = (out / "hosts/app3/etc/strata/strata_settings.py").read_text()
    block = settings.split('"ACCELERATORS": [')[1].split("]")[0]
    assert re.findall(r'"([^"]+)"', block) == [f"http://10.0.2.{i}:6091" for i in (1, 2, 3)]
    # Redis under Sentinel: the backend that asks the Sentinels for the primary.
    assert '"BACKEND": "strata.cache.sentinel.SentinelRedisCache"' in settings
    sentinels = settings.split('"LOCATION": [')[1].split("]")[0]
    assert re.findall(r'"([^"]+)"', sentinels) == [
        f"sentinel://10.0.{host}:26379" for host in ("4.1", "4.2", "1.1")
    ]
    assert '"service_name": "strata",' in settings
    assert '"PURGE_SECRET": _secret("STRATA_PURGE_SECRET")' in settings


def test_the_settings_block_loads_in_django_with_a_replica_alias(rendered, tmp_path):
    out, _, _ = rendered
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(out / "hosts/app1/etc/strata"), str(REPO / "demo")]),
        "DJANGO_SETTINGS_MODULE": "strata_settings",
        "DJANGO_SECRET_KEY": "k" * 50,
        "STRATA_PURGE_SECRET": "s" * 32,
        "DATABASE_PASSWORD": "p" * 24,
        "STRATA_REDIS_PASSWORD": "r" * 32,
    }
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.STRATA['ACCELERATORS'], s.STRATA['PURGE_SECRET'], "
        "sorted(s.DATABASES), s.DATABASES['replica1']['NAME'], "
        "s.DATABASES['default']['DISABLE_SERVER_SIDE_CURSORS'], s.STRATA['PAGE_CACHE'], "
        "s.CACHES['default']['OPTIONS']['password']]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        '[["http://10.0.2.1:6091", "http://10.0.2.2:6091", "http://10.0.2.3:6091"], '
        f'"{"s" * 32}", ["default", "replica1"], "newsroom_replica1", true, '
        f'{{"ENABLED": true}}, "{"r" * 32}"]'
    )
    # Without the secrets the settings refuse to load, naming what is missing.
    del env["STRATA_PURGE_SECRET"]
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "STRATA_PURGE_SECRET is not set" in result.stderr


def test_no_rendered_file_holds_a_secret_and_secrets_env_is_private(rendered):
    out, _, report = rendered
    assert stat.S_IMODE(report.secrets_path.stat().st_mode) == 0o600
    values = [
        line.split("=", 1)[1]
        for line in report.secrets_path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    ]
    assert len(values) == 5 and all(len(v) >= 32 for v in values)
    names = [line.split("=", 1)[0] for line in report.secrets_path.read_text().splitlines()]
    assert "STRATA_REDIS_PASSWORD" in names
    for path in out.rglob("*"):
        if path.is_file() and path.name != "secrets.env":
            text = path.read_text()
            assert not any(value in text for value in values), path
    assert "secrets.env" in (out / ".gitignore").read_text().splitlines()


def test_rendering_again_keeps_the_secrets_and_replaces_the_hosts(tmp_path):
    out = tmp_path / "out"
    _, first = render_text(example_text(), out)
    secrets = first.secrets_path.read_text()
    (out / "hosts/lb1/stale.conf").write_text("left over")
    _, again = render_text(example_text(), out)
    assert again.secrets_created == []
    assert again.secrets_path.read_text() == secrets
    assert not (out / "hosts/lb1/stale.conf").exists()


def test_a_directory_that_strata_config_did_not_write_is_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    rendering = render_inventory(parse_inventory(ONE_HOST))
    with pytest.raises(OutputError, match="not empty and was not written by strata config"):
        write_rendering(rendering, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_memcached_nodes_are_all_in_the_settings_and_each_gets_its_config(tmp_path):
    text = ONE_HOST.replace(
        '[hosts]\nweb = "127.0.0.1"', '[hosts]\nweb = "127.0.0.1"\nmc2 = "127.0.0.2"'
    )
    text = text.replace("port = 20379", 'port = 20379\nkind = "memcached"\nmemory = 512')
    text += '\n[[cache]]\nhost = "mc2"\nkind = "memcached"\n'
    render_text(text, tmp_path / "out")
    settings = (tmp_path / "out/hosts/web/etc/strata/strata_settings.py").read_text()
    assert 'env.cache_from_url("memcached://127.0.0.1:20379,127.0.0.2:11211")' in settings
    assert "-m 512" in (tmp_path / "out/hosts/web/etc/memcached.conf").read_text()
    assert "-l 127.0.0.2" in (tmp_path / "out/hosts/mc2/etc/memcached.conf").read_text()


def test_without_a_pooler_django_connects_to_the_servers_and_a_router_sends_reads(tmp_path):
    text = (
        example_text()
        .split("[pooler]")[0]
        .replace("version = 15", 'version = 15\nrouter = "newsroom_site.routers.ReplicaRouter"')
    )
    render_text(text, tmp_path / "out")
    settings = (tmp_path / "out/hosts/app1/etc/strata/strata_settings.py").read_text()
    assert '"HOST": "10.0.5.2",\n        "PORT": 5432,' in settings
    assert "DISABLE_SERVER_SIDE_CURSORS" not in settings
    assert 'DATABASE_ROUTERS = ["newsroom_site.routers.ReplicaRouter"]' in settings
    hba = (tmp_path / "out/hosts/db1/etc/postgresql/15/main/pg_hba.conf").read_text()
    assert [
        line.split()[3] for line in hba.splitlines() if line.startswith("host    newsroom")
    ] == [f"10.0.3.{i}/32" for i in (1, 2, 3, 4)]


def test_the_replica_follows_the_primary_and_the_pooler_knows_both(rendered):
    out, _, _ = rendered
    replica = (out / "hosts/db2/etc/postgresql/15/main/conf.d/strata.conf").read_text()
    assert "primary_conninfo = 'host=10.0.5.1 port=5432 user=replicator" in replica
    assert "hot_standby = on" in replica
    assert "standby.signal" in replica
    assert "password" not in replica.split("primary_conninfo")[1].lower()
    ini = (out / "hosts/db1/etc/pgbouncer/pgbouncer.ini").read_text()
    assert "pool_mode = transaction" in ini
    assert "newsroom_replica1 = host=10.0.5.2 port=5432 dbname=newsroom" in ini
    redis = (out / "hosts/cache2/etc/redis/redis.conf").read_text()
    assert "replicaof 10.0.4.1 6379" in redis
    sentinel = (out / "hosts/lb1/etc/redis/sentinel.conf").read_text()
    assert "sentinel monitor strata 10.0.4.1 6379 2" in sentinel
    assert "bind 10.0.1.1" in sentinel


def test_the_committed_example_is_what_strata_config_renders_today(tmp_path):
    out = tmp_path / "out"
    render_text(EXAMPLE.read_text(), out, source=str(EXAMPLE))
    ignored = {"secrets.env"}
    fresh = [p for p in files_under(out) if p not in ignored and not p.startswith("tls/")]
    committed = [
        p for p in files_under(EXAMPLE_OUTPUT) if p not in ignored and not p.startswith("tls/")
    ]
    assert committed == fresh, "render docs/examples/inventory.toml again (docs/config.md)"
    for path in fresh:
        assert (EXAMPLE_OUTPUT / path).read_text() == (out / path).read_text(), (
            f"{path} differs: strata config docs/examples/inventory.toml "
            "--out docs/examples/production"
        )


def test_every_file_the_committed_readme_links_exists():
    readme = (EXAMPLE_OUTPUT / "README.md").read_text()
    links = re.findall(r"\]\((hosts/[^)]+)\)", readme)
    assert len(links) == sum(len(paths) for paths in EXPECTED.values())
    for link in links:
        assert (EXAMPLE_OUTPUT / link).is_file(), link


def test_redis_keeps_protected_mode_and_includes_its_password_from_a_file(rendered):
    out, _, _ = rendered
    for host in ("cache1", "cache2"):
        redis = (out / f"hosts/{host}/etc/redis/redis.conf").read_text().splitlines()
        assert "protected-mode yes" in redis
        assert f"include {REDIS_AUTH_FILE}" in redis
        assert not any(line.startswith(("requirepass", "masterauth")) for line in redis)
    for host in ("cache1", "cache2", "lb1"):
        sentinel = (out / f"hosts/{host}/etc/redis/sentinel.conf").read_text().splitlines()
        # After `sentinel monitor`: auth-pass names a monitored primary.
        assert sentinel[-1] == f"include {SENTINEL_AUTH_FILE}"
        assert not any(line.startswith("sentinel auth-pass") for line in sentinel)


def test_the_readme_says_how_to_write_the_redis_password_files(rendered):
    out, rendering, _ = rendered
    steps = {entry.host.name: "\n".join(entry.steps) for entry in rendering.hosts}
    for host in ("cache1", "cache2"):
        assert f"> {REDIS_AUTH_FILE}`" in steps[host]
        assert f"install -m 0640 -o redis -g redis /dev/null {REDIS_AUTH_FILE}" in steps[host]
    for host in ("cache1", "cache2", "lb1"):
        assert f"> {SENTINEL_AUTH_FILE}`" in steps[host]
    assert "strata-auth.conf" not in steps["lb2"] + steps["app1"]
    assert "STRATA_REDIS_PASSWORD" in (out / "README.md").read_text().split("## Deploying")[0]


def test_the_settings_block_reads_the_redis_password_from_the_environment(rendered, tmp_path):
    out, _, _ = rendered
    settings = (out / "hosts/app1/etc/strata/strata_settings.py").read_text()
    assert '"password": _secret("STRATA_REDIS_PASSWORD"),' in settings
    # Without Sentinel: the plain RedisCache of the primary, with the same password.
    text = (
        example_text().split("[sentinel]")[0]
        + "[database]"
        + (example_text().split("[database]", 1)[1])
    )
    render_text(text, tmp_path / "out")
    plain = (tmp_path / "out/hosts/app1/etc/strata/strata_settings.py").read_text()
    assert 'env.cache_from_url("redis://10.0.4.1:6379/0")' in plain
    assert 'CACHES["default"]["OPTIONS"]["password"] = _secret("STRATA_REDIS_PASSWORD")' in plain
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(tmp_path / "out/hosts/app1/etc/strata"), str(REPO / "demo")]
        ),
        "DJANGO_SETTINGS_MODULE": "strata_settings",
        "DJANGO_SECRET_KEY": "k" * 50,
        "STRATA_PURGE_SECRET": "s" * 32,
        "DATABASE_PASSWORD": "p" * 24,
        "STRATA_REDIS_PASSWORD": "r" * 32,
    }
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "from django.core.cache import cache; c = s.CACHES['default']; "
        "print(c['BACKEND'], c['OPTIONS']['password'], cache._cache._pool_options['password'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.core.cache.backends.redis.RedisCache",
        "r" * 32,
        "r" * 32,
    ]
    del env["STRATA_REDIS_PASSWORD"]
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "STRATA_REDIS_PASSWORD is not set" in result.stderr


def test_each_app_host_runs_a_purger_with_the_app_servers_settings_and_secrets(rendered):
    out, rendering, _ = rendered
    for i in (1, 2, 3, 4):
        unit = (out / f"hosts/app{i}/etc/systemd/system/strata-purger.service").read_text()
        app = (out / f"hosts/app{i}/etc/systemd/system/strata-app{i}.service").read_text()
        execs = re.findall(r"^ExecStart=(.*)$", unit, re.M)
        assert execs == ["/srv/newsroom/.venv/bin/python -m django strata_purger"]
        for line in (
            "EnvironmentFile=/etc/strata/secrets.env",
            "Environment=DJANGO_SETTINGS_MODULE=strata_settings",
            "WorkingDirectory=",
            "User=",
        ):
            same = [x for x in app.splitlines() if x.startswith(line)]
            assert same and all(x in unit.splitlines() for x in same), line
        assert f"Environment=STRATA_SERVER_NAME=purger@app{i}" in unit
        assert "Restart=always" in unit
    steps = "\n".join(next(e for e in rendering.hosts if e.host.name == "app1").steps)
    assert "systemctl enable --now strata-app1 strata-purger" in steps
    readme = (out / "README.md").read_text()
    assert "one holds a lease in Redis and\ndelivers, the others stand by" in readme


def test_with_memcached_no_purger_runs_and_the_writers_purge(tmp_path):
    text = ONE_HOST.replace("port = 20379", 'port = 20379\nkind = "memcached"')
    rendering, _ = render_text(text, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("strata-purger.service"))
    assert "purger" not in rendering.hosts[0].roles
    assert "strata-purger" not in "\n".join(rendering.hosts[0].steps)
    assert "each process that writes" in rendering.readme


def test_memcached_needs_no_password(tmp_path):
    text = ONE_HOST.replace("port = 20379", 'port = 20379\nkind = "memcached"')
    rendering, _ = render_text(text, tmp_path / "out")
    settings = (tmp_path / "out/hosts/web/etc/strata/strata_settings.py").read_text()
    assert "STRATA_REDIS_PASSWORD" not in settings
    assert "strata-auth.conf" not in "\n".join(rendering.hosts[0].steps)


def test_each_app_host_runs_management_commands_as_its_app_servers_do(rendered):
    out, _, _ = rendered
    manage = out / "hosts/app1/etc/strata/manage"
    assert manage.stat().st_mode & 0o111, "executable"
    text = manage.read_text()
    unit = (out / "hosts/app1/etc/systemd/system/strata-app1.service").read_text()
    assert "export DJANGO_SETTINGS_MODULE=strata_settings" in text
    assert "Environment=DJANGO_SETTINGS_MODULE=strata_settings" in unit
    pythonpath = re.search(r"Environment=PYTHONPATH=(\S+)", unit)[1]
    assert f"export PYTHONPATH={pythonpath}" in text
    assert ". /etc/strata/secrets.env" in text  # the units' EnvironmentFile
    assert "EnvironmentFile=/etc/strata/secrets.env" in unit
