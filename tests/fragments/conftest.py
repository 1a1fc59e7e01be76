"""Fixtures for the fragment cache: the query cache's small newsroom and a clean cache."""

from tests.querycache.conftest import clean_cache, newsroom  # noqa: F401
