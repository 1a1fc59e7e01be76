"""The demo with django-cachalot (its defaults), in the Redis of ``CACHE_URL``."""

from newsroom_site.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "cachalot"]  # noqa: F405
STRATA = {
    **STRATA,  # noqa: F405
    "QUERY_CACHE": {"ENABLED": False},
    # The query caches alone: a page or fragment hit would answer before any query.
    "PAGE_CACHE": {"ENABLED": False},
    "FRAGMENT_CACHE": {"ENABLED": False},
}
CACHALOT_ENABLED = True
CACHALOT_CACHE = "default"
