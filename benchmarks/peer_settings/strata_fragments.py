"""The demo with Strata's query cache and fragment cache on (what ``strata bench`` calls
the warm path: everything below the page cache), in the Redis of ``CACHE_URL``."""

from newsroom_site.settings import *  # noqa: F403

STRATA = {
    **STRATA,  # noqa: F405
    "QUERY_CACHE": {"ENABLED": True},
    "PAGE_CACHE": {"ENABLED": False},
    "FRAGMENT_CACHE": {"ENABLED": True},
}
