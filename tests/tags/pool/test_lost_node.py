"""A node killed, a node restarted empty, and a pool of two: misses, never stale hits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from strata.querycache.stats import reset_stats, stats
from strata.tags.pool import PoolVersionStore
from strata.tags.stores import version_store
from strata.tags.versions import CacheUnavailable


def probe(read) -> tuple[str, object]:
    """Run ``read`` through the query cache: ('hit' or 'miss', what it returned)."""
    hits = stats["hit"]
    value = read()
    return ("hit" if stats["hit"] > hits else "miss"), value


@pytest.fixture
def article(transactional_db):
    from newsroom.models import Article, Author

    author = Author.objects.create(name="Ann", slug="ann", bio="")
    reset_stats()
    return Article.objects.create(
        title="Before", slug="s", author=author, body="b", published_at=datetime.now(UTC)
    )


def title_of(article):
    from newsroom.models import Article

    return lambda: Article.objects.get(pk=article.pk).title


def rename(article, title: str) -> None:
    from newsroom.models import Article

    Article.objects.filter(pk=article.pk).update(title=title)  # bumps after commit


def test_a_killed_node_leaves_the_site_answering_with_fresh_results(pool, article):
    read = title_of(article)
    assert probe(read) == ("miss", "Before")
    assert probe(read) == ("hit", "Before")
    pool.kill(0)
    assert read() == "Before"  # the other two copies answer (hit or miss)
    rename(article, "After")
    assert [read() for _ in range(3)] == ["After"] * 3
    assert probe(read) == ("hit", "After")  # a majority is enough to keep caching
    rename(article, "Again")
    assert read() == "Again"


def test_a_node_restarted_empty_serves_nothing_stale(pool, article):
    read = title_of(article)
    store = version_store("pool")
    store.retry_after = 0
    assert [read(), read()] == ["Before", "Before"]
    pool.kill(0)
    rename(article, "After")  # the bump reaches the two live nodes
    pool.restart_empty(0)
    assert [read() for _ in range(3)] == ["After"] * 3
    assert probe(read) == ("hit", "After")
    rename(article, "Again")  # and reaches all three again
    assert read() == "Again"


def test_a_restarted_node_costs_one_miss_per_tag_it_held(pool):
    store = version_store("pool")
    store.retry_after = 0
    tags = [f"r{n}" for n in range(12)]
    snapshot = store.snapshot(tags)
    pool.restart_empty(0)
    reader = PoolVersionStore("pool")  # a process started since: no broken connection
    after, _ = reader.get_with(tags)
    # Every tag has a copy there (three nodes, three copies). A missing copy beside a
    # present one is a disagreement: a new version, one miss.
    assert all(after[t] != snapshot[t] for t in tags)
    assert reader.get_with(tags)[0] == after == store.get_with(tags)[0]


def test_a_bump_that_reached_one_node_only_is_seen_by_every_process(pool):
    """Two of a tag's three nodes lost at once: the bump fails, but its one copy counts."""
    writer, reader = PoolVersionStore("pool"), PoolVersionStore("pool")
    writer.retry_after = 60
    snapshot = writer.snapshot(["t"])
    pool.pause(0)
    pool.pause(1)
    with pytest.raises(CacheUnavailable):
        writer.get_with(["t"])  # one node of three is not a majority
    assert not writer.bump(["t"])  # a failed bump, kept by the writer...
    pool.resume(0)
    pool.resume(1)  # ...and two old copies come back, agreeing with each other
    versions, _ = reader.get_with(["t"])
    assert versions["t"] != snapshot["t"]


def test_in_a_pool_of_two_a_lost_node_makes_misses_and_a_failed_bump_is_made_later(
    pool_of_two,
):
    store = version_store("pool")
    store.retry_after = 0
    snapshot = store.snapshot(["t"])
    pool_of_two.kill(0)
    with pytest.raises(CacheUnavailable):
        store.get_with(["t"])  # one copy is not a majority of two
    assert not store.bump(["t"])  # kept, and made once the node answers
    pool_of_two.restart_empty(0)
    versions, _ = store.get_with(["t"])
    assert versions["t"] is not None and versions["t"] != snapshot["t"]
    assert store.get_with(["t"])[0] == versions


def test_in_a_pool_of_two_the_site_keeps_answering_without_one_node(pool_of_two, article):
    read = title_of(article)
    assert [read(), read()] == ["Before", "Before"]
    pool_of_two.kill(1)
    assert probe(read) == ("miss", "Before")  # from the database
    rename(article, "After")
    assert [read() for _ in range(3)] == ["After"] * 3


def test_a_copy_lost_in_a_restart_never_lets_an_older_copy_win(pool):
    """Why a missing copy beside a present one is a disagreement, not a gap to fill."""
    store = version_store("pool")
    store.retry_after = 0
    first, second = pool.locations[0], pool.locations[1]
    tag = next(
        t for t in (f"x{n}" for n in range(10_000)) if store.place(t)[1][:2] == (first, second)
    )
    snapshot = store.snapshot([tag])
    store.retry_after = 60
    pool.pause(1)
    store.get_with([tag])  # finds the second node silent and leaves it alone
    assert store.bump([tag])  # the first and the third node take it
    pool.resume(1)  # the second still holds the old version
    pool.restart_empty(0)  # and the first forgot the new one
    reader = PoolVersionStore("pool")  # a process started since: no broken connection
    for _ in range(3):
        versions, _ = reader.get_with([tag])
        assert versions[tag] != snapshot[tag]
