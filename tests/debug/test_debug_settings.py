"""The demo's debug settings (``newsroom_site.settings_debug``) as a developer runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "demo"


def manage(*arguments: str) -> subprocess.CompletedProcess:
    return run_in_demo("newsroom_site.settings_debug", "manage.py", *arguments)


def settings_of(module: str, *expressions: str) -> list[str]:
    """The values of ``expressions`` (about ``settings``) in a fresh process of the demo."""
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "from django.utils.module_loading import import_string; "
    ) + "; ".join(f"print({expression})" for expression in expressions)
    done = run_in_demo(module, "-c", code)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def run_in_demo(settings_module: str, *arguments: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module}
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=DEMO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_debug_settings_pass_every_system_check_with_the_toolbar_before_strata():
    checked = manage("check")

    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues (0 silenced)." in checked.stdout


def test_the_debug_settings_put_the_toolbar_first_and_serve_hits_through_django():
    assert settings_of(
        "newsroom_site.settings_debug",
        "settings.MIDDLEWARE[0]",
        "settings.MIDDLEWARE[1]",
        "settings.DEBUG_TOOLBAR_PANELS[-1]",
        "type(import_string(settings.WSGI_APPLICATION)).__name__",
    ) == [
        "debug_toolbar.middleware.DebugToolbarMiddleware",
        "strata.middleware.StrataMiddleware",
        "strata.debug.panel.StrataPanel",
        "WSGIHandler",
    ]


def test_the_demo_settings_without_debug_stay_without_the_toolbar():
    assert settings_of(
        "newsroom_site.settings",
        "settings.MIDDLEWARE[0]",
        "'debug_toolbar' in settings.INSTALLED_APPS",
    ) == ["strata.middleware.StrataMiddleware", "False"]
