"""A node that drops out of the pool and comes back with its old values (ABA).

The first test of each pair shows what Django's stock pool does with Strata's plain
version store (a stale hit: why ``PoolVersionStore`` exists); the second, the same
events with the store ``version_store()`` picks for a pool.
"""

from __future__ import annotations

import pytest

from strata.tags.pool import PoolVersionStore
from strata.tags.stores import version_store
from strata.tags.versions import VERSION_PREFIX, CacheUnavailable, VersionStore
from tests.tags.pool.conftest import AppProcess, hash_client_node, names_on, wait_until


def stale(versions: dict, extras: dict, key: str) -> bool:
    """The old artifact is back and every version it was built with is current again."""
    artifact = extras.get(key)
    return artifact is not None and artifact[0] == "old" and artifact[1] == versions


def old_artifact_back(store, tag: str, key: str):
    """One read of the tag and the artifact; the read once the old artifact is visible."""
    versions, extras = store.get_with([tag], [key])
    return (versions, extras) if key in extras else None


def tag_versioned_on(address: str) -> str:
    """A tag whose version HashClient keeps on ``address``."""
    return names_on(address, "tag", where=lambda n: hash_client_node(VERSION_PREFIX + n))[0]


def test_djangos_pool_makes_an_old_artifact_valid_again_after_a_partition_heals(pool):
    store = VersionStore("pool")
    store.retry_after = 0  # this test is about HashClient, not the store's back-off
    node = pool.locations[0]
    tag, key = tag_versioned_on(node), names_on(node, "artifact", where=hash_client_node)[0]
    snapshot = store.snapshot([tag])
    store.store(key, ("old", snapshot), 600, snapshot, immediate=True)

    pool.pause(0)
    with pytest.raises(CacheUnavailable):
        store.get_with([tag], [key])  # HashClient drops the silent node...
    assert store.bump([tag])  # ...so the change lands on another one
    versions, extras = store.get_with([tag], [key])
    assert versions[tag] != snapshot[tag] and key not in extras
    pool.resume(0)

    # HashClient puts the node back after dead_timeout, old values and all.
    versions, extras = wait_until(lambda: old_artifact_back(store, tag, key))
    assert stale(versions, extras, key)  # the bug: a write is undone for every reader


def test_a_node_back_from_a_partition_makes_no_old_artifact_valid_again(pool):
    store = version_store("pool")
    assert isinstance(store, PoolVersionStore)
    # The store stays away from a failed node for retry_after: long enough that the bump
    # below skips the silent node (a write sent to a stopped process would be applied
    # when it resumes, which a real partition need not do).
    store.retry_after = 1.0
    node = pool.locations[0]
    # A tag whose copies are read from that node first, and an artifact kept there.
    tag = names_on(node, "tag", where=lambda n: store.place(n)[1][0])[0]
    key = names_on(node, "artifact", where=hash_client_node)[0]
    snapshot = store.snapshot([tag])
    store.store(key, ("old", snapshot), 600, snapshot, immediate=True)

    pool.pause(0)
    versions, extras = store.get_with([tag], [key])
    assert versions == snapshot and key not in extras  # the other two copies answer
    assert store.bump([tag])  # a majority of the tag's nodes took it
    during, _ = store.get_with([tag])
    assert during[tag] != snapshot[tag]
    pool.resume(0)

    def back():
        read = old_artifact_back(store, tag, key)
        assert read is None or not stale(*read, key)
        return read

    versions, extras = wait_until(back)
    assert not stale(versions, extras, key)
    assert versions[tag] != snapshot[tag]
    # The disagreement is settled once: the next reads agree, and a rebuild hits.
    again, _ = store.get_with([tag])
    assert again == versions
    store.store(key, ("new", again), 600, again, immediate=True)
    now, extras = store.get_with([tag], [key])
    assert extras[key] == ("new", now)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_every_copy_position_of_the_returning_node_is_safe(pool, position):
    """Whether the node is asked first, second, or only when another fails."""
    writer = version_store("pool")
    writer.retry_after = 60  # once it has seen the node fail, it leaves it alone
    node = pool.locations[0]
    tags = names_on(node, "t", count=3, where=lambda n: writer.place(n)[1][position])
    snapshot = writer.snapshot(tags)
    pool.pause(0)
    writer.get_with(tags)  # finds the node silent
    assert writer.bump(tags)  # on the two other nodes only
    pool.resume(0)
    reader = PoolVersionStore("pool")  # asks every node, the returning one included
    reader.retry_after = 0
    for _ in range(3):
        versions, _ = reader.get_with(tags)
        assert all(versions[t] != snapshot[t] for t in tags)
    # ...and when another copy of the tag fails, the old one still loses.
    other = reader.place(tags[0])[1][1 if position == 0 else 0]
    pool.pause(pool.locations.index(other))
    versions, _ = reader.get_with(tags)
    assert all(versions[t] != snapshot[t] for t in tags)
    pool.resume(pool.locations.index(other))


def test_djangos_pool_a_process_that_never_saw_the_outage_keeps_the_old_version(pool):
    noticed = AppProcess(lambda: VersionStore("pool"))
    unaware = AppProcess(lambda: VersionStore("pool"))
    try:
        noticed.store.retry_after = unaware.store.retry_after = 0
        tag = tag_versioned_on(pool.locations[0])
        snapshot = unaware.call("snapshot", [tag])
        pool.pause(0)
        with pytest.raises(CacheUnavailable):
            noticed.call("get_with", [tag])
        assert noticed.call("bump", [tag])
        pool.resume(0)
        # The unaware process still reads the node it always read: the bump is lost
        # for it, at once, without waiting for any dead_timeout.
        assert unaware.call("get_with", [tag])[0] == snapshot
        assert noticed.call("get_with", [tag])[0] != snapshot
    finally:
        noticed.close()
        unaware.close()


def test_a_process_that_never_saw_the_outage_does_not_read_the_old_version(pool):
    noticed = AppProcess(lambda: PoolVersionStore("pool"))
    unaware = AppProcess(lambda: PoolVersionStore("pool"))
    try:
        noticed.store.retry_after = 60  # it leaves the silent node alone
        unaware.store.retry_after = 0
        node = pool.locations[0]
        tags = [
            names_on(node, "u", where=lambda n, i=i: noticed.store.place(n)[1][i])[0]
            for i in range(3)
        ]
        snapshot = unaware.call("snapshot", tags)
        pool.pause(0)
        assert noticed.call("get_with", tags)[0] == snapshot
        assert noticed.call("bump", tags)
        pool.resume(0)
        theirs = unaware.call("get_with", tags)[0]
        assert all(theirs[t] != snapshot[t] for t in tags)
        ours = noticed.call("get_with", tags)[0]
        assert ours == unaware.call("get_with", tags)[0]  # both agree from now on
    finally:
        noticed.close()
        unaware.close()


def test_a_change_made_without_one_node_is_seen_by_a_process_without_another(pool):
    """Partitions need not be symmetric: why a majority of three, not a pair.

    With copies on two nodes only, the reader below (which cannot reach the second) would
    accept the first node's old copy, which the writer (which could not reach the first)
    never changed.
    """
    writer, reader = PoolVersionStore("pool"), PoolVersionStore("pool")
    writer.retry_after = reader.retry_after = 60
    first, second = pool.locations[0], pool.locations[1]
    tag = next(
        t for t in (f"p{n}" for n in range(10_000)) if writer.place(t)[1][:2] == (first, second)
    )
    snapshot = writer.snapshot([tag])
    pool.pause(0)
    writer.get_with([tag])  # the writer loses the first node...
    pool.resume(0)
    assert writer.bump([tag])  # ...and changes the second and third copies
    pool.pause(1)
    versions, _ = reader.get_with([tag])  # the reader loses the second node
    pool.resume(1)
    assert versions[tag] != snapshot[tag]


def test_a_forked_worker_opens_its_own_connections(pool):
    """App servers fork after the store may have talked to the pool (``--preload``).

    Were the sockets shared, each process would read replies meant for the other.
    """
    import os

    store = version_store("pool")
    mine, theirs = [f"f{n}" for n in range(20)], [f"g{n}" for n in range(20)]
    snapshot = store.snapshot(mine + theirs)  # connections are open now

    def reads_right(tags) -> bool:
        expected = {tag: snapshot[tag] for tag in tags}
        try:
            return all(store.get_with(tags)[0] == expected for _ in range(300))
        except CacheUnavailable:
            return False

    pid = os.fork()
    if pid == 0:  # the worker
        os._exit(0 if reads_right(theirs) else 1)
    ok = reads_right(mine)
    _, status = os.waitpid(pid, 0)
    assert ok and os.waitstatus_to_exitcode(status) == 0
