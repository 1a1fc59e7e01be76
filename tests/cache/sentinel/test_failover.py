"""A failover of the Redis primary never turns into a stale hit (docs/design.md, "Versions never
repeat"), and Strata follows the new primary by itself.

Real servers: a primary, a replica and a Sentinel (``harness.py``); ``SENTINEL FAILOVER``
promotes the replica. Artifacts are query results stored through the ORM.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User

from strata.querycache.stats import stats
from strata.tags.stores import version_store
from tests.cache.sentinel.conftest import ALIAS, sentinel_cache
from tests.cache.sentinel.helpers import poll

pytestmark = pytest.mark.django_db(transaction=True)


def outcome(read) -> tuple[str, object]:
    """Run ``read``: ('hit' | 'miss' | 'bypass', its result)."""
    before = (stats["hit"], stats["miss"])
    result = read()
    if stats["hit"] > before[0]:
        return "hit", result
    if stats["miss"] > before[1]:
        return "miss", result
    return "bypass", result


def first_cached(read) -> tuple[str, object]:
    """The first outcome of ``read`` that went through the cache (after a failover, a few
    reads may bypass it while the process reconnects)."""
    return poll(lambda: (found := outcome(read))[0] != "bypass" and found, 15, "the cache back")


def emails():
    return list(User.objects.filter(username="ann").values_list("email", flat=True))


def test_a_query_cached_before_a_failover_is_a_miss_after_it(topology, strata_on_sentinel):
    User.objects.create(username="ann", email="ann@example.com")
    assert outcome(emails)[0] == "miss"
    assert outcome(emails)[0] == "hit"

    topology.failover()

    assert first_cached(emails) == ("miss", ["ann@example.com"])
    assert outcome(emails)[0] == "hit"


def test_a_bump_lost_in_a_failover_is_never_a_stale_hit(topology, strata_on_sentinel):
    ann = User.objects.create(username="ann", email="old@example.com")
    assert outcome(emails) == ("miss", ["old@example.com"])
    assert outcome(emails) == ("hit", ["old@example.com"])
    store = version_store(ALIAS)
    key = store._version_key("auth_user")
    before = topology.primary().raw.get(key)

    # The primary acknowledges the bump of this write; the replica never receives it.
    topology.cut_replication()
    User.objects.filter(pk=ann.pk).update(email="new@example.com")
    assert topology.primary().raw.get(key) != before
    new = topology.failover()
    assert new.raw.get(key) == before, "the bump reached the replica: nothing was lost"

    assert first_cached(emails) == ("miss", ["new@example.com"])
    assert outcome(emails) == ("hit", ["new@example.com"])


def test_reads_and_writes_follow_the_new_primary(topology, strata_on_sentinel):
    ann = User.objects.create(username="ann", email="one@example.com")
    assert outcome(emails)[0] == "miss"
    new = topology.failover()

    assert first_cached(emails) == ("miss", ["one@example.com"])
    assert outcome(emails) == ("hit", ["one@example.com"])
    User.objects.filter(pk=ann.pk).update(email="two@example.com")  # a bump on `new`
    assert outcome(emails) == ("miss", ["two@example.com"])
    assert outcome(emails) == ("hit", ["two@example.com"])
    # Every connection of this process now goes to the new primary.
    pool = version_store(ALIAS)._pool
    assert pool.get_master_address()[1] == new.port
    assert strata_on_sentinel.get("probe", "absent") == "absent"
    strata_on_sentinel.set("probe", "written")
    assert new.client.exists(strata_on_sentinel.make_key("probe"))


def test_a_pool_leaves_an_old_primary_still_up_once_sentinel_names_another(topology, strata_on):
    strata_on(sentinel_cache(topology.location, primary_check_interval=0))  # no thread
    User.objects.create(username="ann", email="ann@example.com")
    assert outcome(emails)[0] == "miss"
    old = topology.primary()
    try:
        topology.failover(crash=False)
        # Sentinel demotes a live old primary (and drops its clients) only seconds later.
        assert old.role() == "master"
        assert outcome(emails)[0] == "hit", "still on the old primary"
        version_store(ALIAS)._pool.follow_primary()
        assert outcome(emails) == ("miss", ["ann@example.com"])
    finally:
        topology.reattach(old)


def test_every_process_asks_the_sentinels_where_the_primary_is(topology, strata_on):
    strata_on(sentinel_cache(topology.location, primary_check_interval=0.05))
    User.objects.create(username="ann", email="ann@example.com")
    assert outcome(emails)[0] == "miss"
    assert any(t.name == "strata-sentinel" for t in threading.enumerate())
    old = topology.primary()
    try:
        topology.failover(crash=False)
        # Hits from the old primary until this process's thread asks the Sentinel.
        poll(lambda: outcome(emails) == ("miss", ["ann@example.com"]), 15, "a miss")
        assert old.role() == "master", "moved by the Sentinel's demotion, not by this process"
    finally:
        topology.reattach(old)


def test_a_page_whose_bump_was_lost_in_a_failover_is_rendered_again(topology, strata_on_sentinel):
    from django.test import Client

    from newsroom.models import Article, Author

    author = Author.objects.create(name="One", slug="one", bio="")
    article = Article.objects.create(
        title="Old title",
        slug="a1",
        author=author,
        body="b",
        published_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    client = Client()

    def page():
        response = client.get("/articles/a1/")
        assert response.status_code == 200
        return response.headers["X-Strata"], response.content

    assert page()[0] == "page-miss"
    assert page()[0] == "page-hit"
    key = version_store(ALIAS)._version_key(Article._meta.db_table)
    before = topology.primary().raw.get(key)
    topology.cut_replication()
    Article.objects.filter(pk=article.pk).update(title="New title")
    assert topology.primary().raw.get(key) != before
    assert topology.failover().raw.get(key) == before, "the bump reached the replica"

    state, content = poll(lambda: (found := page())[0].startswith("page-") and found, 15, "pages")
    assert state == "page-miss" and b"New title" in content and b"Old title" not in content
    assert page()[0] == "page-hit"
