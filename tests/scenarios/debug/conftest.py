"""The demo under ``runserver`` with the debug toolbar (``newsroom_site.settings_debug``),
and a real headless browser (the security tests' Playwright and Debian chromium)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_base_port, make_run_dir, remove_run_dir
from tests.scenarios.security.conftest import (  # noqa: F401  (fixtures)
    browser_type_launch_args,
    new_browser_context,
    require_browser,
)

DEMO = Path(__file__).resolve().parents[3] / "demo"


def _manage(environ: dict[str, str], *arguments: str, **options) -> subprocess.Popen | None:
    command = [sys.executable, "manage.py", *arguments]
    if options.get("background"):
        return subprocess.Popen(
            command,
            cwd=DEMO,
            env=environ,
            stdout=options["log"],
            stderr=subprocess.STDOUT,
        )
    subprocess.run(command, cwd=DEMO, env=environ, check=True, capture_output=True)
    return None


@pytest.fixture(scope="module")
def debug_site():
    """The base URL of the demo with the toolbar: SQLite and a file cache in a run
    directory, a small seed, ``runserver`` on a free port, stopped by its PID."""
    require_browser()
    run_dir = make_run_dir()
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "newsroom_site.settings_debug",
        "DATABASE_URL": f"sqlite:///{run_dir / 'db.sqlite3'}",
        "CACHE_URL": f"file://{run_dir / 'cache'}",
    }
    for name in ("STRATA_ACCELERATORS", "STRATA_PAGE_CACHE", "STRATA_QUERY_CACHE"):
        environ.pop(name, None)
    _manage(environ, "migrate", "--noinput")
    _manage(
        environ,
        "seed_newsroom",
        *("--articles", "30", "--comments", "60", "--authors", "5", "--tags", "5"),
        *("--readers", "3"),
    )
    port = free_base_port(app_servers=0)
    base = f"http://127.0.0.1:{port}"
    with open(run_dir / "runserver.log", "wb") as log:
        server = _manage(
            environ, "runserver", f"127.0.0.1:{port}", "--noreload", background=True, log=log
        )
    assert server is not None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/-/health", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"runserver did not start: {(run_dir / 'runserver.log').read_text()}"
                    ) from None
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
        remove_run_dir(run_dir)
