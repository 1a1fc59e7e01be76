"""System checks for a pool of Memcached servers (strata.E034, W035, W036)."""

from __future__ import annotations

import sys

from strata.cache.checks import check_strata_cache

PYMEMCACHE = "django.core.cache.backends.memcached.PyMemcacheCache"
TIMEOUTS = {"timeout": 0.5, "connect_timeout": 0.5}


def ids(settings, location, options=None, backend=PYMEMCACHE) -> list[str]:
    settings.CACHES = {
        "default": {"BACKEND": backend, "LOCATION": location, "OPTIONS": options or {}}
    }
    settings.STRATA = {"QUERY_CACHE": {"ENABLED": True}}
    return sorted({message.id for message in check_strata_cache()})


def test_a_pool_of_three_with_timeouts_passes(settings):
    assert ids(settings, ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"], TIMEOUTS) == []


def test_one_server_is_not_a_pool(settings):
    assert ids(settings, "10.0.0.1:11211") == []
    assert ids(settings, ["10.0.0.1:11211", " 10.0.0.1:11211"]) == []


def test_a_pool_of_two_is_flagged_its_versions_need_both(settings):
    assert ids(settings, "10.0.0.1:11211;10.0.0.2:11211", TIMEOUTS) == ["strata.W035"]


def test_a_pool_without_timeouts_is_flagged(settings):
    three = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"]
    assert ids(settings, three) == ["strata.W036"]
    assert ids(settings, three, {"timeout": 0.5}) == ["strata.W036"]


def test_a_pool_without_pymemcache_is_an_error(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymemcache", None)  # as if it were not installed
    three = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"]
    backend = "django.core.cache.backends.memcached.PyLibMCCache"
    assert ids(settings, three, backend=backend) == ["strata.E034"]
