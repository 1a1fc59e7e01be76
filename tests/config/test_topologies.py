"""The generated configs are valid for the real programs, in every topology."""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from strata.stack.appserver import DjangoProject
from strata.stack.config import StackConfig, demo_project
from strata.stack.errors import StackError
from strata.stack.program import Program
from strata.stack.stack import Stack
from tests.helpers import free_base_port, make_run_dir, remove_run_dir, require_real_stack


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


def test_the_vcl_compiles_from_a_private_directory(tmp_path):
    # A clone in a home directory or mktemp -d (mode 0700): as root, varnishd -C without
    # -j none drops to its own user and cannot read the VCL.
    require_real_stack()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    stack = Stack(StackConfig(run_dir=private / ".strata", project=demo_project(), port=20000))
    varnish = stack.accelerators[0]
    varnish.render_vcl()
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


def test_a_page_that_fails_the_start_check_is_reported_with_djangos_exception(run_dir, tmp_path):
    # With DEBUG off, a project without LOGGING logs no traceback anywhere: the check
    # names the exception Django raises for the same request in manage.py shell.
    site = tmp_path / "brokensite"
    site.mkdir()
    (site / "__init__.py").write_text("")
    (site / "settings.py").write_text(
        "DEBUG = False\nSECRET_KEY = 'x'\nROOT_URLCONF = 'brokensite.urls'\n"
        "ALLOWED_HOSTS = ['127.0.0.1']\nINSTALLED_APPS = []\nDATABASES = {}\n"
    )
    (site / "urls.py").write_text(
        "from django.urls import path\n\n\ndef home(request):\n"
        "    raise ValueError('Missing staticfiles manifest entry for css/site.css')\n\n\n"
        "urlpatterns = [path('', home)]\n"
    )
    project = DjangoProject(tmp_path, "brokensite.settings", "brokensite.wsgi:application")
    with _answering_500() as port:
        stack = Stack(StackConfig(run_dir=run_dir, project=project, port=port, embedded=True))
        (run_dir / "logs").mkdir()
        with pytest.raises(StackError) as failed:
            stack._check_end_to_end(timeout=0.5)
    assert "failed (status 500; in manage.py shell: ValueError: Missing staticfiles manifest" in (
        str(failed.value)
    )
    assert "manage.log" in str(failed.value)


@contextlib.contextmanager
def _answering_500():
    """A server on loopback that answers every GET with a bare 500 (as DEBUG off does)."""

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_base_port()), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class _ExitsWhileItsProbePasses(Program):
    """A Varnish whose port another program took after the port check: that program
    answers the probe, while varnishd itself exits."""

    layer = "accelerator"
    implementation = "Varnish"

    def argv(self):
        return ["sh", "-c", "echo 'Error: Could not get socket :1: Address already in use'; exit 2"]

    def healthy(self):
        return True


def test_a_program_that_exits_after_its_probe_passed_is_named_with_its_log(run_dir):
    stack = Stack(
        StackConfig(run_dir=run_dir, project=demo_project(), port=free_base_port(), embedded=True)
    )
    (run_dir / "logs").mkdir()
    program = _ExitsWhileItsProbePasses("varnish1", run_dir, "127.0.0.1", 1)
    program.start()
    stack.started.append(program)
    program.process.popen.wait(5)
    with pytest.raises(StackError, match="varnish1: Varnish exited with status 2") as failed:
        stack._check_end_to_end(timeout=5)
    assert "Address already in use" in failed.value.detail


def test_the_app_server_config_names_the_project(run_dir):
    stack = Stack(StackConfig(run_dir=run_dir, project=demo_project(), port=20000, embedded=True))
    app = stack.app_servers[0]
    app.prepare()
    text = app.config_path.read_text()
    # Strata's application, which loads the project's WSGI_APPLICATION (strata.stack.wsgi).
    assert "module = strata.stack.wsgi:application" in text
    assert f"chdir = {demo_project().directory}" in text


def test_the_gunicorn_config_names_the_project_and_runs(run_dir):
    stack = Stack(
        StackConfig(
            run_dir=run_dir,
            project=demo_project(),
            port=20000,
            embedded=True,
            app_server="gunicorn",
        )
    )
    app = stack.app_servers[0]
    app.prepare()
    text = app.config_path.read_text()
    assert 'wsgi_app = "strata.stack.wsgi:application"' in text
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
