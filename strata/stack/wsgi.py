"""The WSGI application that `strata up` runs: the project's own, plus what a stack adds.

The app servers load ``strata.stack.wsgi:application``, which is:

- the project's application, named by ``STRATA_WSGI_APPLICATION`` (``strata up --wsgi``)
  or, as Django's ``runserver`` does it, by the ``WSGI_APPLICATION`` setting;
- wrapped in WhiteNoise serving ``STATIC_ROOT`` at ``STATIC_URL``, when the project has no
  WhiteNoise middleware of its own: static files leave with a long public lifetime
  (hashed names from the manifest storage are immutable), and Varnish keeps them;
- with errors on stderr, which is the app server's log, when the settings configure no
  ``LOGGING``: Django's defaults send a 500's traceback only to ``ADMINS`` by mail when
  ``DEBUG`` is off, so every page could fail with nothing logged.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
from importlib import import_module

from .inspection import serves_static_itself

__all__ = ["application", "load_application", "HASHED_NAME"]

HASHED_NAME = re.compile(r"\.[0-9a-f]{12}\.[^./]+$")
"""A file name as ``ManifestStaticFilesStorage`` writes it (``app.3f1a2b4c5d6e.css``)."""

log = logging.getLogger("strata.stack")


def load_application():
    """The project's WSGI application with static files and error logging added."""
    import django
    from django.conf import settings

    django.setup(set_prefix=False)
    name = os.environ.get("STRATA_WSGI_APPLICATION") or settings.WSGI_APPLICATION
    if name:
        app = _import(name)
    else:
        from django.core.wsgi import get_wsgi_application

        app = get_wsgi_application()
    # After the project's module ran: its django.setup() configures logging again.
    if not settings.LOGGING:
        _log_errors_to_stderr()
    return _with_static_files(app, settings)


def _import(name: str):
    """``mysite.wsgi:application`` (app servers) or ``mysite.wsgi.application`` (Django)."""
    module, sep, attribute = name.partition(":")
    if not sep:
        module, _, attribute = name.rpartition(".")
    return getattr(import_module(module), attribute)


def _log_errors_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.ERROR)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("django").addHandler(handler)


def _with_static_files(app, settings):
    """``app`` behind WhiteNoise for ``STATIC_ROOT``, unless the project serves it itself."""
    root, url = settings.STATIC_ROOT, settings.STATIC_URL or ""
    if not root or not url.startswith("/"):
        return app  # nothing collected, or the files live on another host (a CDN)
    if serves_static_itself(settings.MIDDLEWARE):
        return app
    try:
        from whitenoise import WhiteNoise
    except ImportError:
        log.warning(
            "static files under %s are not served: install whitenoise "
            '(pip install "django-strata[stack]")',
            url,
        )
        return app
    return WhiteNoise(
        app,
        root=str(root),
        prefix=url,
        immutable_file_test=lambda path, url: bool(HASHED_NAME.search(url)),
    )


def _freeze_before_fork() -> None:
    """Under uWSGI, which loads the application in its master and then forks: the objects
    made while loading live as long as the process, and once frozen the collector never
    touches them, so the workers keep sharing their pages (Gunicorn's configuration does
    the same in ``post_fork``)."""
    try:
        import_module("uwsgi")  # only inside uWSGI
    except ImportError:
        return
    gc.freeze()


application = load_application()
_freeze_before_fork()
