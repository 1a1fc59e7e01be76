"""The demo with no query cache: plain Django, every query goes to PostgreSQL."""

from newsroom_site.settings import *  # noqa: F403

STRATA = {**STRATA, "QUERY_CACHE": {"ENABLED": False}}  # noqa: F405
