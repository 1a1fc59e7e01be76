"""The demo with Strata's query cache on (its defaults), in the Redis of ``CACHE_URL``."""

from newsroom_site.settings import *  # noqa: F403

STRATA = {**STRATA, "QUERY_CACHE": {"ENABLED": True}}  # noqa: F405
