"""Helpers for tests that run real programs: free ports, run directories, HTTP clients."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from strata.httpclient import Session, csrf_token, form_fields
from strata.stack.config import OFFSETS, StackConfig, demo_project
from strata.stack.ports import port_is_free
from strata.stack.postgres import find_postgres_bindir
from strata.stack.program import find_program
from strata.stack.stack import Stack
from strata.stack.varnish import xkey_available

REPO = Path(__file__).resolve().parents[1]

SMALL_SEED = [
    "seed_newsroom",
    "--if-empty",
    "--articles",
    "200",
    "--comments",
    "1500",
    "--authors",
    "20",
    "--tags",
    "12",
    "--readers",
    "20",
]


@contextlib.contextmanager
def demo_stack(**options) -> Iterator[Stack]:
    """The demo on a stack of its own: a small seed, free ports, stopped and removed after.

    ``options`` go to :class:`StackConfig` (two app servers of two workers by default).
    """
    require_real_stack()
    run_dir = make_run_dir()
    config = StackConfig(
        run_dir=run_dir,
        project=demo_project(),
        port=free_base_port(),
        setup_commands=[["migrate", "--noinput"], SMALL_SEED],
        **{"app_servers": 2, "workers": 2, "edge_ttl": 300, **options},
    )
    stack = Stack(config)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        remove_run_dir(run_dir)


def missing_programs() -> list[str]:
    """System programs the real stack needs that this machine lacks."""
    missing = [name for name in ("varnishd", "haproxy", "redis-server") if not find_program(name)]
    if find_program("varnishd") and not xkey_available():
        missing.append("varnish-modules (xkey)")
    if find_postgres_bindir() is None:
        missing.append("postgresql")
    return missing


def skip_locally_fail_in_ci(message: str) -> NoReturn:
    """Skip the test on a developer's machine; fail it in CI, where everything must run."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_real_stack() -> None:
    """Skip locally, fail in CI, when the real programs are not installed."""
    missing = missing_programs()
    if missing:
        skip_locally_fail_in_ci(
            f"not installed: {', '.join(missing)} (scripts/bootstrap.sh installs them)"
        )


def pytest_command(*arguments: str) -> list[str]:
    """A command line that runs pytest quietly, without its cache, on ``arguments``."""
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *arguments]


def run_cases_in_own_pytest(
    cases: str,
    settings: str,
    env: dict[str, str],
    *options: str,
    unset: tuple[str, ...] = (),
) -> None:
    """Run the test file ``cases`` in a pytest of its own under the settings module
    ``settings`` (Django's ``DATABASES`` cannot change inside one run); assert it passed.

    ``env`` is added to this process's environment, ``unset`` removed from it.
    """
    removed = ("DJANGO_SETTINGS_MODULE", *unset)
    full_env = {k: v for k, v in {**os.environ, **env}.items() if k not in removed}
    command = pytest_command(*options, "--ds", settings, cases)
    result = subprocess.run(
        command, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=240
    )
    print(result.stdout[-8000:], result.stderr[-4000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]


T = TypeVar("T")


def poll(check: Callable[[], T], timeout: float, every: float = 0.3) -> T:
    """``check()``'s first truthy answer within ``timeout`` seconds, else its last one."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(every)


def free_base_port(app_servers: int = 4) -> int:
    """A base port whose whole block of stack ports is free right now."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10000, 30000, 10)
        ports = [base + offset for offset in OFFSETS.values()]
        ports += [base + OFFSETS["app"] + i for i in range(app_servers)]
        if all(port_is_free("127.0.0.1", p) for p in ports):
            return base
    raise RuntimeError("no free block of ports")


def make_run_dir() -> Path:
    """A run directory that the postgres user can traverse (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="strata-test-", dir="/tmp"))
    path.chmod(0o755)
    return path


def remove_run_dir(path: Path) -> None:
    """Remove a test's run directory (kept for a look when STRATA_KEEP_RUN_DIR is set)."""
    if os.environ.get("STRATA_KEEP_RUN_DIR"):
        print(f"kept the run directory {path}")
        return
    shutil.rmtree(path, ignore_errors=True)


class Client(Session):
    """A browser-like client of the stack for tests: cookies, a connection per request
    (threads may share the client, and a program that a test stops leaves no half-closed
    connection behind), TLS without checking the stack's self-signed certificate, and a
    log-in."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: bool = False,
        timeout: float = 30.0,
        host_header: str | None = None,
    ):
        super().__init__(
            host,
            port,
            timeout,
            host_header,
            keep_alive=False,
            tls_context=_unverified_tls() if tls else None,
        )

    def login(self, username: str, password: str = "newsroom") -> None:
        """Log in through the demo's login form; assert the session cookie came back."""
        page = self.get("/accounts/login/")
        token = csrf_token(page.text)
        assert token, (page.status, page.getheaders(), page.text[:500])
        answer = self.post_form(
            "/accounts/login/",
            {"username": username, "password": password, "csrfmiddlewaretoken": token},
        )
        assert answer.status == 302, (answer.status, answer.text[:500])
        assert "sessionid" in self.cookies


def _unverified_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def submit_form(
    client: Client, path: str, form_id: str, changes: dict[str, str | list[str]], extra=None
):
    """GET ``path``, change some fields of its form, POST it back like a browser would."""
    page = client.get(path)
    assert page.status == 200, (page.status, page.text[:300])
    fields = [(k, v) for k, v in form_fields(page.text, form_id) if k not in changes]
    for name, value in changes.items():
        values = value if isinstance(value, list) else [value]
        fields += [(name, v) for v in values]
    fields += list((extra or {}).items())
    return client.post_form(path, fields)
