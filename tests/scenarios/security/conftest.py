"""Fixtures of the security tests: the session's real stack, and a real headless browser.

The browser is Debian's chromium driven by Playwright (pytest-playwright's fixtures);
Playwright never downloads a browser here. Without chromium or Playwright the browser
tests skip locally and fail in CI, like the stack tests without their programs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import skip_locally_fail_in_ci

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


def artifacts_dir() -> Path:
    """Where screenshots are kept after the run (``STRATA_ARTIFACTS``)."""
    path = Path(os.environ.get("STRATA_ARTIFACTS") or "/tmp/strata-artifacts/")
    path.mkdir(parents=True, exist_ok=True)
    return path


def missing_browser() -> list[str]:
    """What the browser tests need that this machine lacks."""
    missing = [
        module
        for module in ("playwright", "pytest_playwright")
        if importlib.util.find_spec(module) is None
    ]
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"chromium ({CHROMIUM})")
    return missing


def require_browser() -> None:
    """Skip locally, fail in CI, when the headless browser is not installed."""
    missing = missing_browser()
    if missing:
        skip_locally_fail_in_ci(
            f"not installed: {', '.join(missing)} "
            "(pip install -e '.[browser]'; apt-get install chromium)"
        )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Launch Debian's chromium; Playwright adds --headless and --no-sandbox itself."""
    require_browser()
    # Playwright's sync API keeps an asyncio loop running in the main thread until the
    # session ends, where Django's ORM raises SynchronousOnlyOperation. No need for
    # DJANGO_ALLOW_ASYNC_UNSAFE: these tests use the ORM only through `manage.py`, and
    # pytest-django runs every database test of the session before the others.
    return {**browser_type_launch_args, "executable_path": CHROMIUM}


@pytest.fixture
def new_browser_context(request):
    """``new_browser_context()``: a browser context of its own (own cookies), one per person.

    pytest-playwright's ``new_context`` (closed after the test), on Debian's chromium.
    """
    require_browser()
    try:
        return request.getfixturevalue("new_context")
    except pytest.FixtureLookupError:
        skip_locally_fail_in_ci("the pytest-playwright plugin is not active (-p no:playwright?)")
