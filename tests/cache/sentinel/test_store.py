"""The Sentinel backend and its version store, without a failover: what they guarantee
between failovers, and what they do when Sentinel or the primary cannot be used."""

from __future__ import annotations

import logging
import types
from datetime import UTC, datetime

import pytest
import redis
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from strata.cache.epoch import EPOCH_KEY, script_args
from strata.cache.sentinel import PrimaryConnection, SentinelRedisCache, parse_location
from strata.querycache.stats import stats
from strata.stack.ports import free_port
from strata.tags.failover import SentinelVersionStore
from strata.tags.stores import version_store
from tests.cache.sentinel.conftest import ALIAS, sentinel_cache
from tests.cache.sentinel.helpers import LOOPBACK, Server, require_redis

# -- the store between failovers --------------------------------------------------------


@pytest.fixture
def store(strata_on_sentinel) -> SentinelVersionStore:
    found = version_store(ALIAS)
    assert type(found) is SentinelVersionStore
    return found


def test_a_snapshot_is_current_until_a_bump(store):
    before = store.snapshot(["t1", "t2"])
    assert store.is_current(before) and store.snapshot(["t1", "t2"]) == before
    assert store.bump(["t1"])
    after = store.snapshot(["t1", "t2"])
    assert after["t1"] != before["t1"] and after["t2"] == before["t2"]
    assert not store.is_current(before)


def test_a_read_creates_missing_versions_stamped_with_the_epoch(store, strata_on_sentinel):
    versions, extras = store.get_with(["fresh"], ["artifact"])
    epoch = strata_on_sentinel.get(EPOCH_KEY)
    assert versions["fresh"].endswith(f".{epoch}") and extras == {}
    assert store.get_with(["fresh"])[0] == versions  # created once, read back since


def test_losing_the_epoch_key_makes_every_snapshot_stale(store, strata_on_sentinel):
    before = store.snapshot(["t"])
    strata_on_sentinel.delete(EPOCH_KEY)  # evicted, or deleted by hand
    assert not store.is_current(before)
    assert store.is_current(store.snapshot(["t"]))


def test_versions_never_repeat_after_the_cache_is_flushed(store, strata_on_sentinel):
    seen = set()
    for _ in range(20):
        seen.add(store.snapshot(["t"])["t"])
        strata_on_sentinel.clear()
    assert len(seen) == 20


# -- the primary only -------------------------------------------------------------------


def test_a_replica_is_refused_even_when_named_as_the_primary(topology):
    replica = topology.replica()
    with pytest.raises(redis.ReadOnlyError):
        replica.raw.eval(*script_args("e", "i"))
    # What the backend's connections run before serving anything:
    pool = types.SimpleNamespace(check_connection=False, is_master=True)
    connection = PrimaryConnection(epoch_keys=("e", "i"), connection_pool=pool)
    with pytest.raises(redis.ConnectionError, match="now a slave"):
        connection.connect_to((LOOPBACK, replica.port))
    assert not replica.raw.exists("e")


def test_a_restarted_primary_gets_a_new_epoch(tmp_path):
    """A restart can lose bumps made after the last save: its run id changes the epoch."""
    binary = require_redis()
    port = free_port(set())
    argv = [binary, "--port", str(port), "--bind", LOOPBACK, "--dir", str(tmp_path)]
    argv += ["--save", "", "--appendonly", "yes", "--logfile", str(tmp_path / "r.log")]
    server = Server("standalone", tmp_path, port, argv)
    try:
        first = server.raw.eval(*script_args("e", "i"))
        assert server.raw.eval(*script_args("e", "i")) == first  # same primary, same epoch
        server.stop()
        server = Server("standalone", tmp_path, port, argv)
        assert server.raw.get("e") == first  # the data survived the restart...
        assert server.raw.eval(*script_args("e", "i")) != first  # ...the epoch did not
    finally:
        server.stop()


# -- Sentinel unreachable ---------------------------------------------------------------


@pytest.fixture
def nowhere(strata_on):
    """Strata's cache behind a Sentinel address where nothing listens."""
    return strata_on(sentinel_cache(f"sentinel://{LOOPBACK}:{free_port(set())}"))


@pytest.mark.django_db(transaction=True)
def test_without_a_sentinel_reads_come_from_the_database(nowhere, caplog):
    User.objects.create(username="ann")
    errors = stats["error"]
    with caplog.at_level(logging.WARNING, logger="strata.tags"):
        assert list(User.objects.values_list("username", flat=True)) == ["ann"]
    assert stats["error"] == errors + 1
    assert "No master found for 'strata-test'" in caplog.text
    with pytest.raises(redis.ConnectionError, match="No master found for 'strata-test'"):
        nowhere.get("anything")


@pytest.mark.django_db(transaction=True)
def test_without_a_sentinel_pages_are_still_served(nowhere):
    from newsroom.models import Article, Author

    author = Author.objects.create(name="One", slug="one", bio="")
    Article.objects.create(
        title="A1",
        slug="a1",
        author=author,
        body="b1",
        published_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    response = Client().get("/articles/a1/")
    assert response.status_code == 200 and b"A1" in response.content
    assert response.headers["X-Strata"] == "bypass: cache unavailable"


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    ["redis://127.0.0.1:6379", "sentinel://", "sentinel://host:notaport", "", []],
)
def test_a_bad_location_is_named(location):
    with pytest.raises(ImproperlyConfigured, match="LOCATION"):
        parse_location(location)


def test_locations_are_lists_or_strings():
    assert parse_location("sentinel://a:1,sentinel://b") == [("a", 1), ("b", 26379)]
    assert parse_location(["sentinel://a:1"]) == [("a", 1)]


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "service_name"),
        ({"service_name": "s", "pool_class": "x"}, "pool_class"),
        ({"service_name": "s", "primary_check_interval": -1}, "primary_check_interval"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        SentinelRedisCache("sentinel://127.0.0.1:26379", {"OPTIONS": options})
