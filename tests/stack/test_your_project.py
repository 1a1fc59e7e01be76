"""`strata up` for a project it has never seen: a fresh ``django-admin startproject``.

It finds the WSGI application in ``WSGI_APPLICATION``, refuses a project that could only
answer errors (before anything starts, saying what to change), calls a stack up only
when a page answers 2xx or 3xx, logs a server error's traceback where a person looks,
and lets management commands reach the running stack (``strata manage``, ``strata
env``). Embedded mode (SQLite, the file cache, one app server): what is tested here is
the project's side, not the programs'.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strata.stack.probes import http_get
from tests.helpers import free_base_port, make_run_dir, remove_run_dir

STRATA = [sys.executable, "-m", "strata.cli"]

SETTINGS_TAIL = """
INSTALLED_APPS += ["strata"]
MIDDLEWARE.insert(0, "strata.middleware.StrataMiddleware")
DEBUG = False
"""
CONFIGURE = """
from strata import env  # noqa: E402

env.configure(globals())
"""
URLS = """
from django.contrib import admin
from django.urls import include, path


def boom(request):
    return 1 / 0


urlpatterns = [
    path("admin/", admin.site.urls),
    path("-/", include("strata.urls")),
    path("boom/", boom),
]
"""


def environment() -> dict[str, str]:
    drop = {"DJANGO_SETTINGS_MODULE", "PYTHONPATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("STRATA_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # strata (editable)
    return env


@pytest.fixture
def project():
    """A new ``startproject`` site with Strata added, in a directory of its own."""
    parent = make_run_dir()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite"],
        cwd=parent,
        check=True,
        env=environment(),
    )
    site = parent / "mysite"
    (site / "mysite" / "urls.py").write_text(URLS)
    yield site
    remove_run_dir(parent)


def settings_file(site: Path, text: str, module: str = "mysite/settings.py") -> None:
    path = site / module
    path.write_text(path.read_text() + text if path.exists() else text)


class Up:
    """``strata up --embedded`` for ``site``, as a subprocess."""

    def __init__(self, site: Path, *args: str, settings: str = "mysite.settings"):
        self.site, self.port = site, free_base_port()
        self.run_dir = site / ".strata"
        self.process = subprocess.Popen(
            [*STRATA, "up", "--embedded", "--settings", settings, "--port", str(self.port)]
            + ["--app-servers", "1", "--workers", "1", *args],
            cwd=site,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def failure(self, timeout: float = 120) -> str:
        """The output of a start that must fail, once it exited."""
        output, _ = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 1, output
        assert "Traceback" not in output, output
        assert not (self.run_dir / "state.json").exists()
        return " ".join(output.split())  # Rich wraps long lines

    def serving(self, timeout: float = 120) -> Up:
        deadline = time.monotonic() + timeout
        while not (self.run_dir / "state.json").exists():
            if self.process.poll() is not None:
                raise AssertionError(self.process.stdout.read())
            assert time.monotonic() < deadline, "strata up did not answer"
            time.sleep(0.2)
        return self

    def strata(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*STRATA, *args], cwd=self.site, env=environment(), capture_output=True, text=True
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=60)
        assert self.process.returncode == 0


def test_allowed_hosts_that_leave_out_the_stack_are_refused_before_anything_starts(project):
    settings_file(project, SETTINGS_TAIL + 'ALLOWED_HOSTS = ["www.example.com"]\n')
    output = Up(project).failure()
    assert "ALLOWED_HOSTS (www.example.com) does not allow 127.0.0.1, localhost" in output
    assert "strata.env.configure(globals())" in output


def test_a_project_without_strata_middleware_is_told_to_add_it_first(project):
    settings_file(project, 'INSTALLED_APPS += ["strata"]\nALLOWED_HOSTS = ["127.0.0.1"]\n')
    output = Up(project).failure()
    assert "strata.middleware.StrataMiddleware is not in MIDDLEWARE: put it first" in output


def test_the_stack_is_up_only_when_a_page_answers_and_check_path_names_one(project):
    settings_file(project, SETTINGS_TAIL + CONFIGURE)
    output = Up(project).failure()  # startproject has no page at /
    assert "GET / through 127.0.0.1" in output and "answered 404" in output
    assert "Django's answer (app1 pid=" in output
    assert "--check-path" in output
    up = Up(project, "--check-path", "/admin/login/").serving()
    try:
        assert http_get("127.0.0.1", up.port, "/admin/login/").status == 200
    finally:
        up.stop()


def test_the_wsgi_application_comes_from_the_settings_wherever_they_live(project):
    """``--settings mysite.config.production``: no ``mysite.config.wsgi`` is guessed."""
    config = project / "mysite" / "config"
    config.mkdir()
    (config / "__init__.py").write_text("")
    settings_file(
        project, "from mysite.settings import *  # noqa: F403\n", "mysite/config/production.py"
    )
    settings_file(project, SETTINGS_TAIL + CONFIGURE, "mysite/config/production.py")
    up = Up(project, "--check-path", "/admin/login/", settings="mysite.config.production")
    up.serving()
    try:
        assert http_get("127.0.0.1", up.port, "/admin/login/").status == 200
    finally:
        up.stop()


def test_a_server_error_leaves_its_traceback_in_the_app_log_without_logging_settings(project):
    settings_file(project, SETTINGS_TAIL + CONFIGURE)
    up = Up(project, "--check-path", "/admin/login/").serving()
    try:
        assert http_get("127.0.0.1", up.port, "/boom/").status == 500
        log = up.run_dir / "logs" / "app1.log"
        deadline = time.monotonic() + 10
        while "ZeroDivisionError" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = log.read_text()
        assert "ERROR django.request: Internal Server Error: /boom/" in text
        assert "Traceback" in text and "ZeroDivisionError" in text
    finally:
        up.stop()


def test_management_commands_reach_the_running_stack_and_only_that(project):
    settings_file(project, SETTINGS_TAIL + CONFIGURE)
    nothing = subprocess.run(
        [*STRATA, "manage", "check"], cwd=project, env=environment(), capture_output=True, text=True
    )
    assert nothing.returncode == 1
    assert "no stack is running for" in nothing.stderr and "Traceback" not in nothing.stderr
    up = Up(project, "--check-path", "/admin/login/").serving()
    try:
        database = up.run_dir / "db.sqlite3"
        exported = up.strata("env")
        assert exported.returncode == 0, exported.stderr
        assert f"export DATABASE_URL=sqlite:///{database}" in exported.stdout
        assert "export DJANGO_SETTINGS_MODULE=mysite.settings" in exported.stdout
        unit = up.strata("env", "--format", "systemd").stdout  # an EnvironmentFile
        assert f'DATABASE_URL="sqlite:///{database}"' in unit
        shell = up.strata(
            "manage",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.DATABASES['default']['NAME'])",
        )
        assert shell.returncode == 0, shell.stderr
        assert shell.stdout.strip().endswith(str(database))
        created = up.strata(
            "manage",
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "admin@example.com",
        )
        assert created.returncode == 0, created.stderr
        page = http_get("127.0.0.1", up.port, "/admin/login/")
        assert page.status == 200
    finally:
        up.stop()
    assert not (up.run_dir / "environment.json").exists()
