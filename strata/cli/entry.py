"""The ``strata`` console script: says what to install when the stack extra is missing.

``pip install django-strata`` installs the Django app alone; the command line's libraries
come with ``pip install "django-strata[stack]"``. Without them the command says so, in
one line and without a traceback, instead of failing on ``import click``.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec
from typing import NoReturn

__all__ = ["STACK_MODULES", "main", "missing_stack_modules"]

STACK_MODULES = ("click", "rich", "jinja2", "pyuwsgi", "gunicorn")
"""What the command line imports or runs, all from the ``stack`` extra."""

INSTALL = 'pip install "django-strata[stack]"'


def missing_stack_modules() -> list[str]:
    """The modules of the ``stack`` extra that this Python cannot import."""
    return [name for name in STACK_MODULES if find_spec(name) is None]


def main() -> None:
    """Run ``strata.cli.main``, or say which extra is missing and exit with status 1."""
    missing = missing_stack_modules()
    if missing:
        _needs_stack(missing)
    try:
        from .main import main as cli_main
    except ImportError as error:  # found but broken: the same advice, for that module
        top = (error.name or "").partition(".")[0]
        if top not in STACK_MODULES:
            raise
        _needs_stack([top])
    cli_main()


def _needs_stack(missing: list[str]) -> NoReturn:
    sys.stderr.write(
        f"strata: the command line needs the stack extra: {INSTALL} "
        f"(missing: {', '.join(missing)})\n"
    )
    raise SystemExit(1)
