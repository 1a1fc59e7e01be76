"""WSGI entry point for the app servers that ``strata up`` runs (``newsroom_site.wsgi``)."""

import os

from django.core.wsgi import get_wsgi_application

from strata.pages.wsgi import PageCacheApplication

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsroom_site.settings")

# Page-cache hits are answered before Django's request handling; the rest go through it.
application = PageCacheApplication(get_wsgi_application())
