"""The demo with django-cacheops: every newsroom and auth query, in Redis.

``CACHEOPS_REDIS`` is the Redis of ``CACHE_URL`` with the next database number, so the
Django cache (sessions) and cacheops do not share a keyspace.
"""

import os
from urllib.parse import urlsplit

from newsroom_site.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "cacheops"]  # noqa: F405
STRATA = {
    **STRATA,  # noqa: F405
    "QUERY_CACHE": {"ENABLED": False},
    # The query caches alone: a page or fragment hit would answer before any query.
    "PAGE_CACHE": {"ENABLED": False},
    "FRAGMENT_CACHE": {"ENABLED": False},
}

_redis = urlsplit(os.environ["CACHE_URL"])
_db = int(_redis.path.strip("/") or 0)
CACHEOPS_REDIS = f"redis://{_redis.netloc}/{_db + 1}"
CACHEOPS = {
    "newsroom.*": {"ops": "all", "timeout": 600},
    "auth.*": {"ops": "all", "timeout": 600},
}
CACHEOPS_DEGRADE_ON_FAILURE = False
