"""The CMS site's whole stack, started by ``strata up`` from the site's own virtualenv.

``cms_venv()`` is a virtualenv holding Wagtail, Django, uWSGI, Gunicorn, psycopg, redis and
Strata from its wheel (not the working tree); ``cms_stack()`` makes the site
(:mod:`tests.scenarios.cms.wagtail_site`) and runs ``<venv>/bin/strata up`` for it as a
subprocess, so the app servers run under the venv's Python; ``Editor`` is a person using
Wagtail's admin through the load balancer with plain form posts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import django

from strata.stack.process import pid_alive
from tests.helpers import (
    Client,
    form_fields,
    free_base_port,
    make_run_dir,
    remove_run_dir,
    submit_form,
)
from tests.scenarios.cms.wagtail_site import SETTINGS, build_site
from tests.suites.venvs import strata_wheel, suite_venv

__all__ = [
    "WAGTAIL",
    "REQUIREMENTS",
    "CmsStack",
    "Editor",
    "anonymous_get",
    "cms_stack",
    "cms_venv",
]

WAGTAIL = "wagtail==8.0.1"
"""The newest Wagtail 8.x on PyPI (8.0 supports Django 5.2)."""

REQUIREMENTS = [WAGTAIL, "pyuwsgi", "gunicorn", "psycopg[binary]", "redis[hiredis]"]

START_TIMEOUT = 240
"""Seconds ``strata up`` may take to answer (initdb, Wagtail's ~200 migrations, checks)."""

STOP_TIMEOUT = 60


def cms_venv() -> Path:
    """The ``bin`` directory of the CMS venv (made once, kept while its stamp matches)."""
    python = suite_venv("cms", django.__version__, REQUIREMENTS, strata_wheel())
    with tempfile.TemporaryDirectory(prefix="strata-cms-venv-") as neutral:
        assert _imports_strata_from(python, Path(neutral)), f"no Strata in {python}"
    return python.parent


def _imports_strata_from(python: Path, cwd: Path) -> bool:
    """True when ``python`` imports Strata from its own site-packages."""
    found = subprocess.run(
        [str(python), "-c", "import strata; print(strata.__file__)"],
        cwd=cwd,
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return found.returncode == 0 and found.stdout.startswith(str(python.parents[1]))


def _clean_environment() -> dict[str, str]:
    """This process's environment without what points Python at the repository."""
    drop = {"PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@dataclass
class CmsStack:
    """A running ``strata up`` for the CMS site."""

    site: Path
    bin_dir: Path
    run_dir: Path
    port: int
    process: subprocess.Popen
    state: dict

    def app_environment(self) -> dict[str, str]:
        """The environment ``strata up`` gave its first app server (read from /proc)."""
        pid = self.state["programs"]["app1"]["pid"]
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)

    def manage(self, args: list[str], **extra: str) -> str:
        """``strata manage args``: the venv's own command, the app servers' environment."""
        result = subprocess.run(
            [str(self.bin_dir / "strata"), "manage", "--run-dir", str(self.run_dir), *args],
            cwd=self.site,
            env={**_clean_environment(), **extra},
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def layers(self) -> dict[str, str]:
        """Each layer's implementation, as ``strata status`` shows it (the exporters of
        the layers' metrics left out: :meth:`exporters`)."""
        return {
            row["layer"]: row["implementation"]
            for row in self.state["rows"]
            if row["layer"] != "metrics"
        }

    def exporters(self) -> set[str]:
        """The programs that export the layers' metrics to Prometheus."""
        return {row["implementation"] for row in self.state["rows"] if row["layer"] == "metrics"}


@contextlib.contextmanager
def cms_stack(bin_dir: Path, purges: bool = True) -> Iterator[CmsStack]:
    """Make the site, run ``strata up`` for it on PostgreSQL + Redis + Varnish + HAProxy.

    ``purges=False`` gives the app servers no accelerator to purge (the site's settings
    then say ``STRATA["ACCELERATORS"] = []``): only Varnish's TTL ends a cached page.
    Stopped with SIGTERM to the ``strata up`` process (by its PID), which stops every
    program it started; the run directory is removed.
    """
    parent = Path(tempfile.mkdtemp(prefix="strata-cms-site-", dir="/tmp"))
    process = run_dir = None
    try:
        site = build_site(bin_dir, parent)
        if not purges:
            settings = (site / SETTINGS.replace(".", "/")).with_suffix(".py")
            settings.write_text(settings.read_text() + 'STRATA["ACCELERATORS"] = []\n')
        process, run_dir, port, state = _up(bin_dir, site)
        yield CmsStack(site, bin_dir, run_dir, port, process, state)
        _stop(process, run_dir)
        assert process.returncode == 0, _output(run_dir)
    finally:
        if process is not None and process.poll() is None:
            _stop(process, run_dir)
        if run_dir is not None:
            remove_run_dir(run_dir)
        remove_run_dir(parent)


def _up(bin_dir: Path, site: Path) -> tuple[subprocess.Popen, Path, int, dict]:
    """``strata up`` for the CMS site: two app servers, pages cached 300 s at the edge."""
    options = ["--no-seed", "--edge-ttl", "300", "--app-servers", "2", "--workers", "2"]
    return strata_up(bin_dir, site, SETTINGS, options)


def strata_up(
    bin_dir: Path, site: Path, settings: str, options: list[str], app_servers: int = 4
) -> tuple[subprocess.Popen, Path, int, dict]:
    """Start ``<bin_dir>/strata up`` for ``site`` on a free block of ports; wait until it
    serves; return the process, its run directory, its port and its state.

    Tried again once on other ports when one was taken meanwhile (other stacks start
    on this machine too: a port free at the check can be taken before it is bound).
    """
    for attempt in range(2):
        run_dir, port = make_run_dir(), free_base_port(app_servers=app_servers)
        with open(run_dir / "strata-up.out", "wb") as output:
            process = subprocess.Popen(
                [str(bin_dir / "strata"), "up", "--project-dir", str(site)]
                + ["--settings", settings, "--port", str(port), "--run-dir", str(run_dir)]
                + options,
                cwd=site,
                env=_clean_environment(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            return process, run_dir, port, _wait_until_serving(process, run_dir)
        except AssertionError:
            with contextlib.suppress(AssertionError):
                _stop(process, run_dir)
            taken = "already in use" in _output(run_dir)
            remove_run_dir(run_dir)
            if attempt or not taken:
                raise
    raise AssertionError("not reached: the second attempt returns or raises")


def _wait_until_serving(process: subprocess.Popen, run_dir: Path) -> dict:
    """The state ``strata up`` writes once every layer answered, end to end."""
    deadline = time.monotonic() + START_TIMEOUT
    state = run_dir / "state.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"strata up exited {process.returncode}:\n{_output(run_dir)}")
        if state.exists():
            with contextlib.suppress(ValueError):  # being written
                return json.loads(state.read_text())
        time.sleep(0.2)
    raise AssertionError(f"strata up did not answer in {START_TIMEOUT} s:\n{_output(run_dir)}")


def _stop(process: subprocess.Popen, run_dir: Path) -> None:
    """SIGTERM ``strata up``, wait for it, check that no program of it is left."""
    state = run_dir / "state.json"
    pids = []
    with contextlib.suppress(OSError, ValueError):
        pids = [row["pid"] for row in json.loads(state.read_text())["rows"] if row["pid"]]
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()  # its programs die with it (the kernel's parent-death signal)
        process.wait(timeout=10)
        raise AssertionError(f"strata up did not stop in {STOP_TIMEOUT} s") from None
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if pid_alive(pid)]
    assert not left, f"strata up left programs running: {left}"


def _output(run_dir: Path) -> str:
    try:
        return (run_dir / "strata-up.out").read_text(errors="replace")[-4000:]
    except OSError:
        return ""


def anonymous_get(stack: CmsStack, path: str):
    """GET ``path`` through the load balancer as a visitor without cookies."""
    return Client("127.0.0.1", stack.port).get(path)


class Editor:
    """A Wagtail editor in the admin, through the load balancer, posting plain forms."""

    def __init__(self, stack: CmsStack, username: str, password: str):
        self.client = Client("127.0.0.1", stack.port)
        self.username, self.password = username, password

    def login(self) -> None:
        """Sign in with Wagtail's login form."""
        page = self.client.get("/admin/login/")
        fields = dict(_form_with_action(page.text, "/admin/login/"))
        fields.update(username=self.username, password=self.password)
        answer = self.client.post_form("/admin/login/", fields)
        assert answer.status == 302, (answer.status, answer.text[:500])
        assert "sessionid" in self.client.cookies

    def page_id(self, path: str) -> int:
        """The id of the page at ``path``, from the userbar's edit link (a personal hole)."""
        page = self.client.get(path)
        found = re.search(r'/admin/pages/(\d+)/edit/"', page.text)  # an absolute URL
        assert found, (page.status, page.getheaders(), page.text[:1000])
        return int(found.group(1))

    def add_article(self, parent_id: int, title: str, slug: str, intro: str = "") -> None:
        """Create an ``ArticlePage`` under ``parent_id`` and publish it."""
        answer = submit_form(
            self.client,
            f"/admin/pages/add/home/articlepage/{parent_id}/",
            "page-edit-form",
            {"title": title, "slug": slug, "intro": intro},
            extra={"action-publish": "action-publish"},
        )
        _assert_done(answer)

    def publish(self, page_id: int, **changes: str) -> None:
        """Edit the page (``changes`` to its fields) and publish it."""
        answer = submit_form(
            self.client,
            f"/admin/pages/{page_id}/edit/",
            "page-edit-form",
            changes,
            extra={"action-publish": "action-publish"},
        )
        _assert_done(answer)

    def unpublish(self, page_id: int) -> None:
        """Unpublish the page, confirming as the admin asks."""
        path = f"/admin/pages/{page_id}/unpublish/"
        page = self.client.get(path)
        _assert_done(self.client.post_form(path, _form_with_action(page.text, path)))


def _form_with_action(html: str, action: str) -> list[tuple[str, str]]:
    """The fields a browser posts for the form with ``action`` (Wagtail gives it no id)."""
    marked = html.replace(f'action="{action}"', f'id="strata-form" action="{action}"', 1)
    return form_fields(marked, "strata-form")


def _assert_done(answer) -> None:
    """Wagtail redirects after a successful admin action; a 200 is the form with errors."""
    assert answer.status == 302, (answer.status, answer.text[:2000])
