"""The demo with Django's per-site cache and no ``StrataMiddleware`` at all.

Django's own cache as a project without Strata would run it: ``UpdateCacheMiddleware``
first, the demo's other middleware, ``FetchFromCacheMiddleware`` last, in the Redis of
``CACHE_URL``. Without Strata's middleware there is no ``/-/health``: the app server is
probed on ``/``. Used by ``benchmarks/page_cache_peers.py``.
"""

from newsroom_site.settings import *  # noqa: F403

MIDDLEWARE = [
    "django.middleware.cache.UpdateCacheMiddleware",
    *[m for m in MIDDLEWARE if m != "strata.middleware.StrataMiddleware"],  # noqa: F405
    "django.middleware.cache.FetchFromCacheMiddleware",
]
STRATA = {**STRATA, "PAGE_CACHE": {"ENABLED": False}}  # noqa: F405
CACHE_MIDDLEWARE_SECONDS = 3600
CACHE_MIDDLEWARE_KEY_PREFIX = "django-site-cache-alone"
