"""docs/your-site.md, followed word for word: from ``pip install`` to a running stack.

The steps are read from the document itself (``<!-- step: ... -->`` before each block),
so the page and what CI runs cannot drift apart. Three things differ from a person at a
terminal, each said on the page: the wheel built from this tree replaces the package
index, ``strata up`` runs in the background, and its port is a free one
(``STRATA_UP_PORT``, which the page's ``127.0.0.1:8000`` follows).

Between the steps, the test does what the page asks of the reader in a browser (log in
to the admin, change a price) and checks what the page promises: the edit shows on the
very next anonymous request through the load balancer, a logged-in user gets the
greeting through the personal hole, static files are Varnish hits with an immutable
lifetime. The whole tutorial runs in a private (0700) directory, as a home directory
or ``mktemp -d`` is.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from strata.httpclient import csrf_token
from strata.stack.process import pid_alive
from tests.helpers import Client, free_base_port, remove_run_dir, require_real_stack, submit_form
from tests.suites.venvs import strata_wheel

pytestmark = pytest.mark.stack

DOC = Path(__file__).resolve().parents[3] / "docs" / "your-site.md"
PACKAGE = '"django-strata[stack,postgres,redis]"'
STEP = re.compile(
    r"<!-- step: (?P<kind>\w+)(?: (?P<arg>[^>]*?))? -->\n```\w*\n(?P<body>.*?)```", re.S
)
TIMINGS = Path(__file__).resolve().parents[3] / ".strata" / "your-site-timings.json"
"""Where the last run's figures go (the time from a new virtualenv to a served page)."""
START_TIMEOUT = 240
STEP_TIMEOUT = 600


@dataclass
class Step:
    """One block of the page: ``run`` (shell), ``start`` (shell, in the background),
    ``write``/``append`` (a file), ``system`` (programs the machine must have)."""

    kind: str
    arg: str
    body: str


def read_steps() -> list[Step]:
    """The page's steps, in order."""
    return [
        Step(m["kind"], (m["arg"] or "").strip(), m["body"]) for m in STEP.finditer(DOC.read_text())
    ]


def test_the_page_has_every_kind_of_step():
    kinds = [step.kind for step in read_steps()]
    assert kinds.count("start") == 1
    assert {"system", "run", "write", "append"} <= set(kinds)
    assert any(PACKAGE in step.body for step in read_steps()), "the install line changed"


class Tutorial:
    """A reader following the page in ``home`` (a private directory)."""

    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.wheel = strata_wheel()
        self.stack: subprocess.Popen | None = None
        self.output = home / "strata-up.out"
        self.timings: dict[str, float] = {}

    def environment(self) -> dict[str, str]:
        drop = {"PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONHOME"}
        env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("STRATA_")}
        env.update(
            STRATA_UP_PORT=str(self.port),
            # As ". venv/bin/activate" in the reader's terminal: every later block has it.
            VIRTUAL_ENV=str(self.home / "venv"),
            PATH=f"{self.home / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        return env

    def directory(self, step: Step) -> Path:
        return self.home / step.arg.removeprefix("in ").strip() if step.arg else self.home

    def script(self, step: Step) -> str:
        text = step.body.replace(PACKAGE, f'"{self.wheel}[stack,postgres,redis]"')
        return text.replace("127.0.0.1:8000", f"127.0.0.1:{self.port}")

    def run(self, step: Step) -> str:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.script(step)],
            cwd=self.directory(step),
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, (
            f"step failed ({result.returncode}):\n{step.body}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}\n"
            f"strata up:\n{self.stack_output()}"
        )
        return result.stdout

    def write(self, step: Step, append: bool = False) -> None:
        path = self.home / step.arg
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if append else "w") as out:
            out.write(step.body)

    def start(self, step: Step) -> None:
        with open(self.output, "wb") as out:
            self.stack = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", "exec " + self.script(step)],
                cwd=self.directory(step),
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        state = self.directory(step) / ".strata" / "state.json"
        deadline = time.monotonic() + START_TIMEOUT
        while not state.exists():
            assert self.stack.poll() is None, f"strata up exited:\n{self.stack_output()}"
            assert time.monotonic() < deadline, f"strata up is not up:\n{self.stack_output()}"
            time.sleep(0.2)

    def stack_output(self) -> str:
        try:
            return self.output.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """After the page's ``strata down``: ``strata up`` must have ended cleanly."""
        if self.stack is None:
            return
        try:
            code = self.stack.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.stack.send_signal(signal.SIGTERM)
            code = self.stack.wait(timeout=60)
        assert code == 0, self.stack_output()


def check_a_user_sees_an_admin_edit_at_once(port: int) -> None:
    """The reader logs in to the admin and changes a price: the next anonymous request
    shows it, while the page was a Varnish hit just before."""
    visitor = Client("127.0.0.1", port)
    visitor.get("/")
    before = visitor.get("/")
    assert before.getheader("X-Cache") == "HIT", before.getheaders()
    assert "29.00" in before.text
    assert "Hello" not in before.text

    admin = Client("127.0.0.1", port)
    page = admin.get("/admin/login/")
    token = csrf_token(page.text)
    assert token, (page.status, page.text[:500])
    fields = {"username": "admin", "password": "change-me", "csrfmiddlewaretoken": token}
    assert admin.post_form("/admin/login/?next=/admin/", fields).status == 302
    assert "Hello, admin!" in admin.get("/").text  # the personal hole, through ESI

    listing = admin.get("/admin/shop/book/")
    book = re.search(
        r'href="/admin/shop/book/(\d+)/change/">High Performance Django<', listing.text
    )
    assert book, listing.text[:2000]
    path = f"/admin/shop/book/{book[1]}/change/"
    saved = submit_form(admin, path, "book_form", {"price": "31.00"}, extra={"_save": "Save"})
    assert saved.status == 302, saved.text[:2000]

    after = Client("127.0.0.1", port).get("/")
    assert "31.00" in after.text and "29.00" not in after.text
    assert after.getheader("X-Cache") != "HIT", after.getheaders()


def check_static_files_are_varnish_hits(port: int) -> None:
    """The page's stylesheet, under its hashed name, kept by Varnish for a year."""
    page = Client("127.0.0.1", port).get("/")
    css = re.search(r"/static/shop/site\.[0-9a-f]{12}\.css", page.text)
    assert css, page.text[:1000]
    reader = Client("127.0.0.1", port)
    reader.cookies["sessionid"] = "someone-else"  # cookies never split a static file
    for _ in range(2):
        answer = reader.get(css[0])
    assert answer.status == 200
    assert answer.getheader("X-Cache") == "HIT", answer.getheaders()
    assert "immutable" in answer.getheader("Cache-Control", "")
    assert "public" in answer.getheader("Cache-Control", "")


CHECKS = {
    "createsuperuser": check_a_user_sees_an_admin_edit_at_once,
    "site\\.": check_static_files_are_varnish_hits,
}
"""After the step whose text contains the key, what the page promises there."""


def test_docs_your_site_from_pip_install_to_a_running_stack():
    require_real_stack()
    home = Path(tempfile.mkdtemp(prefix="strata-your-site-"))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700  # a private directory
    tutorial = Tutorial(home, free_base_port())
    begun = time.monotonic()
    try:
        for step in read_steps():
            if step.kind == "system":
                continue  # require_real_stack() checked that these programs are here
            if step.kind in ("write", "append"):
                tutorial.write(step, append=step.kind == "append")
            elif step.kind == "start":
                tutorial.start(step)
                tutorial.timings["from a new virtualenv to a served page (s)"] = round(
                    time.monotonic() - begun, 1
                )
            else:
                assert step.kind == "run", step.kind
                tutorial.run(step)
            for marker, check in CHECKS.items():
                if step.kind == "run" and marker in step.body:
                    check(tutorial.port)
        tutorial.stop()
    finally:
        if tutorial.stack is not None and tutorial.stack.poll() is None:
            tutorial.stack.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                tutorial.stack.wait(timeout=60)
        state = home / "mysite" / ".strata" / "state.json"
        with contextlib.suppress(OSError, ValueError):
            pids = [row["pid"] for row in json.loads(state.read_text())["rows"] if row["pid"]]
            assert not [pid for pid in pids if pid_alive(pid)], "strata up left programs"
        TIMINGS.parent.mkdir(exist_ok=True)
        TIMINGS.write_text(json.dumps(tutorial.timings, indent=1) + "\n")
        remove_run_dir(home)
