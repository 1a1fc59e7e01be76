"""The demo with Strata's query cache on (its defaults), in the Redis of ``CACHE_URL``."""

from newsroom_site.settings import *  # noqa: F403

STRATA = {
    **STRATA,  # noqa: F405
    "QUERY_CACHE": {"ENABLED": True},
    # The query caches alone: a page or fragment hit would answer before any query.
    "PAGE_CACHE": {"ENABLED": False},
    "FRAGMENT_CACHE": {"ENABLED": False},
}
