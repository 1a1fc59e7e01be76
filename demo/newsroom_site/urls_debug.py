"""The demo's URLs with the debug toolbar's (``newsroom_site.settings_debug``)."""

from debug_toolbar.toolbar import debug_toolbar_urls

from .urls import urlpatterns as site_urlpatterns

urlpatterns = [*site_urlpatterns, *debug_toolbar_urls()]
