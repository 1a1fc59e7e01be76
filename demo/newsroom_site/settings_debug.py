"""The demo with django-debug-toolbar and Strata's panel: ``--settings=newsroom_site.settings_debug``.

The demo's settings (``newsroom_site.settings``), plus DEBUG, the toolbar for requests
from this machine (``INTERNAL_IPS``), and ``strata.debug.panel.StrataPanel``
(``docs/debug-toolbar.md``). For a developer's machine only: never behind a public
address (the toolbar shows SQL, settings and headers).

The toolbar's middleware comes first, before ``StrataMiddleware``: it then wraps Strata,
sees its final answer (page-cache hits too), and adds its markup after the page cache
stored the page. Hits are answered by Django (``newsroom_site.wsgi_debug``), not below
it by ``PageCacheApplication``, which would serve them without the toolbar.
"""

from debug_toolbar.settings import PANELS_DEFAULTS

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS, MIDDLEWARE

DEBUG = True
INTERNAL_IPS = ["127.0.0.1", "::1"]

INSTALLED_APPS = [*INSTALLED_APPS, "debug_toolbar"]
MIDDLEWARE = ["debug_toolbar.middleware.DebugToolbarMiddleware", *MIDDLEWARE]
# The toolbar first, Strata's right after it (strata.E021 allows exactly this; strata.W080,
# the panel's own check, warns when the toolbar comes after StrataMiddleware).
DEBUG_TOOLBAR_PANELS = [*PANELS_DEFAULTS, "strata.debug.panel.StrataPanel"]

ROOT_URLCONF = "newsroom_site.urls_debug"
WSGI_APPLICATION = "newsroom_site.wsgi_debug.application"
