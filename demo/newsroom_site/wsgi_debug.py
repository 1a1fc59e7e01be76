"""WSGI entry point of the demo with the debug toolbar (``newsroom_site.settings_debug``).

Django's plain handler, without ``PageCacheApplication``: page-cache hits then go through
the middleware (``StrataMiddleware`` answers them) and show the toolbar like any page.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsroom_site.settings_debug")

application = get_wsgi_application()
