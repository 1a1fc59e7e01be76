"""WSGI entry point for the app servers that ``strata up`` runs (``newsroom_site.wsgi``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "newsroom_site.settings")

application = get_wsgi_application()
