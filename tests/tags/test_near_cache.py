"""The near cache: each process's copy of versions and artifacts, exact against a real Redis.

A read after a write made anywhere has returned sees the write; a copy being read while its
key changes is not kept; a lost or silent push connection leaves no copy in use; the copies
stay within their bytes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis as redis_py

from strata.tags.nearcache import NearCache
from strata.tags.stores import version_store
from tests.bus.helpers import running_redis
from tests.helpers import REPO

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def redis_server():
    with running_redis() as server:
        yield server


@pytest.fixture
def store(settings, redis_server):
    """The Redis version store of a cache with a key prefix of its own, near cache on."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": uuid.uuid4().hex[:8],
        }
    }
    settings.STRATA = {**settings.STRATA, "NEAR_CACHE": {"SILENCE": 0.5}}
    store = version_store("default")
    assert store.near is not None
    store.get_with(["warm-up"])
    assert _wait(lambda: store.near.drain()), "the push connection did not open"
    yield store
    version_store.cache_clear()


@pytest.fixture
def other(redis_server):
    """A client of the same Redis that is not this process's store (another writer)."""
    client = redis_py.Redis.from_url(redis_server.url)
    yield client
    client.close()


def _wait(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _mgets(client) -> int:
    return int(client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))


def test_a_second_read_is_answered_without_redis(store, other):
    store.bump(["t.a", "t.b"])
    first = store.get_with(["t.a", "t.b"], ["strata:p2:page"])
    before = _mgets(other)
    for _ in range(50):
        assert store.get_with(["t.a", "t.b"], ["strata:p2:page"]) == first
    assert _mgets(other) == before
    assert store.near.figures()["hits"] >= 150


def test_every_read_after_a_write_elsewhere_sees_the_write(store, other):
    """No waiting: Redis pushes a write's invalidation before it answers the writer, and
    each read first applies what has arrived."""
    key = store._version_key("t.hot")
    dumps = store._serializer.dumps
    for round_ in range(300):
        store.get_with(["t.hot"])  # a copy of the current version, if any
        other.set(key, dumps(f"v{round_}"))
        assert store.get_with(["t.hot"])[0]["t.hot"] == f"v{round_}"


def test_a_key_written_while_it_is_read_is_not_kept():
    near = NearCache(1 << 20, lambda data: data.decode())
    near.drain = lambda: True
    found, missing, token = near.lookup(["k"])
    assert missing == ["k"]
    near.invalidate(["k"])  # the write lands between Redis's answer and the fill
    assert near.fill(token, missing, [b"old"]) == ["old"]  # this reader gets what it read
    assert near.lookup(["k"])[1] == ["k"]  # but nobody else gets it from the copy
    assert near.figures()["refused"] == 1


def test_a_flush_drops_every_copy(store, other):
    store.bump(["t.f"])
    store.get_with(["t.f"])
    assert store.near.figures()["entries"] >= 1
    other.flushdb()
    assert store.get_with(["t.f"])[0] == {"t.f": None}


def test_a_lost_push_connection_drops_the_copies_until_it_is_back(store, other):
    store.bump(["t.l"])
    store.get_with(["t.l"])
    killed = other.client_kill_filter(_type="pubsub")
    assert killed >= 1
    # Whatever is written while the connection is down or reopening is seen.
    other.set(store._version_key("t.l"), store._serializer.dumps("while-down"))
    assert store.get_with(["t.l"])[0]["t.l"] == "while-down"
    assert _wait(lambda: store.near.drain()), "the push connection did not come back"
    assert store.get_with(["t.l"])[0]["t.l"] == "while-down"
    assert store.near.figures()["dropped"] >= 1


def test_a_silent_redis_turns_the_copies_off(store, redis_server):
    """A cut that nothing reports: no answer to the pings for SILENCE seconds."""
    store.bump(["t.s"])
    store.get_with(["t.s"])
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        time.sleep(0.8)
        found, missing, token = store.near.lookup([store._version_key("t.s")])
        assert (found, token) == ({}, None)
        assert store.near.figures()["entries"] == 0
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    assert _wait(lambda: store.near.drain())


def test_copies_stay_within_their_bytes():
    near = NearCache(10_000, bytes)
    near.drain = lambda: True
    for i in range(100):
        _, missing, token = near.lookup([f"k{i}"])
        near.fill(token, missing, [b"x" * 500])
    figures = near.figures()
    assert figures["bytes"] <= 10_000 and figures["entries"] < 100
    assert figures["evicted"] > 0
    assert near.lookup(["k99"])[0]  # the most recent stay


def test_a_reader_cannot_change_another_readers_copy(store):
    """Query results may hold lists: each reader unpickles its own."""
    store.cache.set("strata:q:rows", ({"t": "1"}, [[1, 2]]))
    rows = store.get_with([], ["strata:q:rows"])[1]["strata:q:rows"][1]
    rows[0].append("mutated")
    assert store.get_with([], ["strata:q:rows"])[1]["strata:q:rows"][1] == [[1, 2]]


def test_off_in_settings_means_every_read_goes_to_redis(settings, redis_server):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
        }
    }
    settings.STRATA = {**settings.STRATA, "NEAR_CACHE": {"ENABLED": False}}
    assert version_store("default").near is None


def test_the_benchmark_smoke_run_finds_no_stale_read_across_processes(tmp_path):
    """``benchmarks/near_cache.py --smoke``: readers in other processes never see an
    older version once a write has returned (the figures are the script's to print)."""
    out = tmp_path / "near_cache.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "near_cache.py"), "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fresh = json.loads(out.read_text())["freshness"]
    assert fresh["stale_reads"] == 0 and fresh["bumps"] > 0 and fresh["reads"] > fresh["bumps"]


def test_a_read_on_a_connection_the_server_dropped_is_made_again(settings, redis_server, other):
    """As redis-py's client does: a restart or a kill leaves dead connections in the pool."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
        }
    }
    settings.STRATA = {**settings.STRATA, "NEAR_CACHE": {"ENABLED": False}}
    store = version_store("default")
    store.bump(["t.k"])
    before = store.get_with(["t.k"])
    assert other.client_kill_filter(_type="normal", skipme=True) >= 1
    assert store.get_with(["t.k"]) == before


def test_a_clear_in_this_process_is_applied_before_clear_returns(store):
    """Redis answers FLUSHDB before it pushes the flush: ``cache.clear()`` waits for it,
    so that the next read of this process (a test's setUp, say) cannot find a copy."""
    store._push._stopped.set()  # only readers (and clear) apply pushes from here on
    store._push._thread.join(2)
    store.bump(["t.c"])
    store.get_with(["t.c"])
    assert store.near.figures()["entries"] >= 1
    store.cache.clear()
    assert store.near.figures()["entries"] == 0  # applied, without a read to drain it
    assert store.get_with(["t.c"])[0] == {"t.c": None}
