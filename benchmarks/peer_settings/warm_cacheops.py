"""django-cacheops as a project without Strata would run it, for ``benchmarks/peers.py``.

``warm_plain`` (no Strata layer) with every newsroom and auth query cached, in Redis
database 1 of ``CACHE_URL`` (the stack's Redis), apart from the Django cache.
"""

import os
from urllib.parse import urlsplit

from peer_settings.warm_plain import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "cacheops"]  # noqa: F405

_redis = urlsplit(os.environ["CACHE_URL"])
CACHEOPS_REDIS = f"redis://{_redis.netloc}/1"
CACHEOPS = {
    "newsroom.*": {"ops": "all", "timeout": 600},
    "auth.*": {"ops": "all", "timeout": 600},
}
CACHEOPS_DEGRADE_ON_FAILURE = False
