"""The demo with django-cacheops: every newsroom and auth query, in Redis database 1.

``CACHEOPS_REDIS`` is the Redis of ``CACHE_URL`` with database 1 instead of 0, so the
Django cache (sessions) and cacheops do not share a keyspace.
"""

import os
from urllib.parse import urlsplit

from newsroom_site.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "cacheops"]  # noqa: F405
STRATA = {**STRATA, "QUERY_CACHE": {"ENABLED": False}}  # noqa: F405

_redis = urlsplit(os.environ["CACHE_URL"])
CACHEOPS_REDIS = f"redis://{_redis.netloc}/1"
CACHEOPS = {
    "newsroom.*": {"ops": "all", "timeout": 600},
    "auth.*": {"ops": "all", "timeout": 600},
}
CACHEOPS_DEGRADE_ON_FAILURE = False
