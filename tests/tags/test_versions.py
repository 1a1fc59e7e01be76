"""The version store's contract, on whichever cache ``CACHE_URL`` names.

``python -m tests.backends`` runs this file against Redis, Memcached and the file cache;
plain ``pytest`` runs it against the local memory cache.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches

from strata.tags.stores import version_store
from strata.tags.versions import VERSION_PREFIX


@pytest.fixture
def store():
    """The store Strata uses for this cache (Redis gets its own, pipelined one)."""
    version_store.cache_clear()
    caches["default"].clear()
    store = version_store("default")
    yield store
    caches["default"].clear()


def test_a_snapshot_creates_missing_versions_once(store):
    first = store.snapshot(["t1", "t2"])
    assert set(first) == {"t1", "t2"} and all(first.values())
    assert store.snapshot(["t1", "t2"]) == first
    assert store.is_current(first)


def test_a_bump_makes_old_snapshots_stale_and_leaves_other_tags_alone(store):
    before = store.snapshot(["t1", "t2"])
    assert store.bump(["t1"])
    after = store.snapshot(["t1", "t2"])
    assert after["t1"] != before["t1"]
    assert after["t2"] == before["t2"]
    assert not store.is_current(before)
    assert store.is_current({"t2": before["t2"]})


def test_versions_never_repeat_after_the_store_is_flushed(store):
    seen = set()
    for _ in range(50):
        snapshot = store.snapshot(["t"])
        assert snapshot["t"] not in seen
        seen.add(snapshot["t"])
        caches["default"].clear()  # a restart or eviction: the version is gone
    assert len(seen) == 50


def test_a_snapshot_naming_a_missing_version_is_not_current(store):
    snapshot = store.snapshot(["t"])
    caches["default"].delete(VERSION_PREFIX + "t")
    assert not store.is_current(snapshot)
    # ...and stays so once the version is created again.
    store.snapshot(["t"])
    assert not store.is_current(snapshot)


def test_two_processes_creating_one_version_agree(store):
    other = type(store)("default")
    versions, _ = store.get_with(["fresh"])
    mine = store.complete(versions)
    theirs = other.complete(versions)  # it also saw the version missing
    assert theirs == mine


def test_one_round_trip_returns_versions_and_extra_keys(store):
    caches["default"].set("artifact", "payload")
    versions, extras = store.get_with(["t"], ["artifact", "absent"])
    assert versions == {"t": None}
    assert extras == {"artifact": "payload"}


def test_a_provisional_version_is_created_when_the_artifact_is_stored(store):
    versions, _ = store.get_with(["p"])
    snapshot, missing = store.provisional(versions)
    assert missing == ["p"]
    store.store("artifact", "payload", 60, snapshot, missing)
    assert store.is_current(snapshot)
    assert store.get_with([], ["artifact"])[1] == {"artifact": "payload"}


def test_a_provisional_version_loses_to_one_set_during_the_read(store):
    versions, _ = store.get_with(["p"])
    snapshot, missing = store.provisional(versions)
    store.bump(["p"])  # a writer committed while we were reading the database
    store.store("artifact", "payload", 60, snapshot, missing)
    assert not store.is_current(snapshot)


def test_an_unpicklable_value_is_refused_without_blaming_the_cache(store):
    snapshot, missing = store.provisional({"p": None})
    with pytest.raises(TypeError):
        store.store("artifact", memoryview(b"x"), 60, snapshot, missing)
    assert store.is_current(store.snapshot(["q"]))  # the store still answers


def test_a_change_of_the_caches_setting_gives_new_stores(store, settings):
    settings.CACHES = {**settings.CACHES}
    assert version_store("default") is not store
