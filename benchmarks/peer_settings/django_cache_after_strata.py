"""The demo with Django's per-site cache just inside ``StrataMiddleware``, its page cache off.

``StrataMiddleware`` stays first (health probe, edge headers); ``UpdateCacheMiddleware``
comes right after it, so it sees the view's response before Strata adds
``Cache-Control: max-age=0`` for browsers; ``FetchFromCacheMiddleware`` is last. Used by
``benchmarks/page_cache_peers.py``.
"""

from newsroom_site.settings import *  # noqa: F403

MIDDLEWARE = [
    MIDDLEWARE[0],  # noqa: F405 (strata.middleware.StrataMiddleware)
    "django.middleware.cache.UpdateCacheMiddleware",
    *MIDDLEWARE[1:],  # noqa: F405
    "django.middleware.cache.FetchFromCacheMiddleware",
]
STRATA = {**STRATA, "PAGE_CACHE": {"ENABLED": False}}  # noqa: F405
CACHE_MIDDLEWARE_SECONDS = 3600
CACHE_MIDDLEWARE_KEY_PREFIX = "django-site-cache-after-strata"
