"""The demo with django-cachalot (its defaults), in the Redis of ``CACHE_URL``."""

from newsroom_site.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "cachalot"]  # noqa: F405
STRATA = {**STRATA, "QUERY_CACHE": {"ENABLED": False}}  # noqa: F405
CACHALOT_ENABLED = True
CACHALOT_CACHE = "default"
