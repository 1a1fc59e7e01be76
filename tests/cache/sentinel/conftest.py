"""Fixtures: one Sentinel topology per session, and Strata pointed at it."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import override_settings

from strata.cache.sentinel import stop_watching
from strata.querycache.stats import reset_stats
from strata.tags import versions
from strata.tags.stores import version_store
from tests.cache.sentinel.helpers import SERVICE, Topology, require_redis

ALIAS = "sentinel"


@pytest.fixture(scope="session")
def topology():
    """A primary, a replica and a Sentinel, stopped by pid even when a test fails."""
    running = Topology(require_redis())
    try:
        yield running
    finally:
        stop_watching()  # the pools' threads would log the Sentinel's absence
        running.stop()


def sentinel_cache(location: str, **options) -> dict:
    """A ``CACHES`` entry for :class:`strata.cache.SentinelRedisCache`."""
    return {
        "BACKEND": "strata.cache.sentinel.SentinelRedisCache",
        "LOCATION": location,
        "OPTIONS": {"service_name": SERVICE, **options},
    }


@pytest.fixture
def strata_on(settings):
    """Point Strata's query cache at a cache alias built from a ``CACHES`` entry."""

    def use(entry: dict):
        caches_setting = {**settings.CACHES, ALIAS: entry}
        strata = {**settings.STRATA, "CACHE": ALIAS, "QUERY_CACHE": {"ENABLED": True}}
        override = override_settings(CACHES=caches_setting, STRATA=strata)
        override.enable()
        overrides.append(override)
        version_store.cache_clear()
        versions.outage_warnings.last.clear()
        reset_stats()
        return caches[ALIAS]

    overrides: list = []
    yield use
    for override in reversed(overrides):
        override.disable()
    version_store.cache_clear()


@pytest.fixture
def strata_on_sentinel(topology, strata_on):
    """Strata's cache on the topology's Sentinel, emptied before the test."""
    cache = strata_on(sentinel_cache(topology.location))
    cache.clear()
    return cache
