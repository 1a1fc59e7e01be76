"""The demo with no query cache: plain Django, every query goes to PostgreSQL."""

from newsroom_site.settings import *  # noqa: F403

STRATA = {
    **STRATA,  # noqa: F405
    "QUERY_CACHE": {"ENABLED": False},
    # The query caches alone: a page or fragment hit would answer before any query.
    "PAGE_CACHE": {"ENABLED": False},
    "FRAGMENT_CACHE": {"ENABLED": False},
}
