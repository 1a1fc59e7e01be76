"""The demo with Django's per-site cache in its documented place, Strata's page cache off.

``UpdateCacheMiddleware`` first, ``FetchFromCacheMiddleware`` last, as Django's
documentation places them, around the demo's middleware (``StrataMiddleware`` included,
with its page cache off), in the Redis of ``CACHE_URL``. Used by
``benchmarks/page_cache_peers.py``.
"""

from newsroom_site.settings import *  # noqa: F403

MIDDLEWARE = [
    "django.middleware.cache.UpdateCacheMiddleware",
    *MIDDLEWARE,  # noqa: F405
    "django.middleware.cache.FetchFromCacheMiddleware",
]
STRATA = {**STRATA, "PAGE_CACHE": {"ENABLED": False}}  # noqa: F405
CACHE_MIDDLEWARE_SECONDS = 3600
CACHE_MIDDLEWARE_KEY_PREFIX = "django-site-cache"
