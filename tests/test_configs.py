"""The generated configs are valid for the real programs, in every topology."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from strata.stack.errors import StackError
from strata.stack.stack import Stack, StackConfig, demo_project

from .stackutil import make_run_dir, remove_run_dir, require_real_stack


@pytest.fixture
def run_dir():
    path = make_run_dir()
    yield path
    remove_run_dir(path)


@pytest.mark.parametrize("pool", ["haproxy", "varnish"])
@pytest.mark.parametrize("app_server", ["gunicorn", "uwsgi"])
def test_configs_are_valid_for_every_topology(run_dir, pool, app_server):
    require_real_stack()
    stack = Stack(
        StackConfig(
            run_dir=run_dir,
            project=demo_project(),
            port=20000,
            app_servers=3,
            pool=pool,
            app_server=app_server,
            tls=True,
        )
    )
    stack.load_balancer.prepare()  # runs `haproxy -c`
    for varnish in stack.accelerators:
        varnish.prepare()  # runs `varnishd -C`
    for app in stack.app_servers:
        app.prepare()
    config = (run_dir / "config" / "haproxy.cfg").read_text()
    assert "ssl crt" in config
    assert ("slowstart" in config) == (pool == "haproxy")
    vcl = (run_dir / "config" / "varnish1.vcl").read_text()
    assert "import xkey;" in vcl
    assert ("directors.round_robin" in vcl) == (pool == "varnish")
    if app_server == "gunicorn":
        compile(Path(run_dir / "config" / "app1.gunicorn.conf.py").read_text(), "conf", "exec")


def test_a_vcl_that_does_not_compile_is_reported_with_the_compilers_words(run_dir):
    require_real_stack()
    stack = Stack(StackConfig(run_dir=run_dir, project=demo_project(), port=20000))
    varnish = stack.accelerators[0]
    varnish.render_vcl()
    varnish.vcl_path.write_text(
        varnish.vcl_path.read_text().replace("return (hash);", "return (hash)")
    )
    with pytest.raises(StackError, match="does not compile: Expected ';'"):
        varnish.compile_check()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("port", 80, "choose a base port"),
        ("port", 32700, "ephemeral range"),
        ("app_server", "mod_wsgi", "unknown app server"),
        ("pool", "nginx", "unknown pool"),
        ("workers", 0, "between 1 and 64"),
    ],
)
def test_impossible_settings_are_refused_before_anything_starts(field, value, message):
    config = StackConfig(run_dir=Path(tempfile.gettempdir()), project=demo_project())
    setattr(config, field, value)
    with pytest.raises(StackError, match=message):
        config.validate()


def test_the_app_server_config_names_the_project(run_dir):
    stack = Stack(StackConfig(run_dir=run_dir, project=demo_project(), port=20000, embedded=True))
    app = stack.app_servers[0]
    app.prepare()
    text = app.config_path.read_text()
    assert 'wsgi_app = "newsroom_site.wsgi:application"' in text
    assert "preload_app = True" in text
    result = subprocess.run(["python3", "-c", f"exec(open({str(app.config_path)!r}).read())"])
    assert result.returncode == 0


def test_postgres_cluster_moves_out_of_a_private_run_directory(tmp_path):
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    from strata.stack.postgres import PostgreSQL

    cluster = PostgreSQL("postgres", private / ".strata", "127.0.0.1", 20432, Path("/nonexistent"))
    if os.geteuid() == 0:  # as root the cluster belongs to `postgres`, who cannot enter it
        assert not cluster.base.is_relative_to(private)
        assert cluster.base.name.startswith("strata-postgres-")
    else:
        assert cluster.base == private / ".strata" / "postgres"
