"""Every transaction mode Django has: never a read of uncommitted data stored for others,
never a committed write's invalidation skipped (``docs/design.md``, "Never store what is
not committed")."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from strata.conf import strata_settings
from strata.querycache.stats import stats
from strata.tags.naming import condition_tag
from strata.tags.stores import version_store
from tests.querycache.conftest import probe


def version_of(tag):
    return version_store(strata_settings().cache_alias).snapshot([tag])[tag]


@pytest.fixture
def manual():
    """Autocommit off, as ``transaction.set_autocommit(False)`` leaves a connection."""
    transaction.set_autocommit(False)
    try:
        yield
    finally:
        transaction.rollback()
        transaction.set_autocommit(True)


def test_autocommit_off_a_write_outside_atomic_is_invalidated_by_commit(newsroom, manual):
    from newsroom.models import Comment

    n = newsroom
    tag = condition_tag("newsroom_comment", "article_id", n.a2.id)
    before = version_of(tag)
    Comment.objects.create(article=n.a2, user=n.ann, body="manual")  # no on_commit error
    assert version_of(tag) == before, "changed before commit"
    transaction.commit()
    assert version_of(tag) != before, "commit() must change the versions, not set_autocommit"


def test_autocommit_off_an_atomic_block_is_invalidated_by_commit_not_later(newsroom, manual):
    from newsroom.models import Comment

    n = newsroom
    read = lambda: Comment.objects.filter(article=n.a2).count()  # noqa: E731
    tag = condition_tag("newsroom_comment", "article_id", n.a2.id)
    transaction.commit()  # start from a clean slate
    before = version_of(tag)
    with transaction.atomic():
        Comment.objects.create(article=n.a2, user=n.ann, body="inside")
    # Django keeps this block's on_commit callbacks until autocommit comes back on.
    transaction.commit()
    assert version_of(tag) != before
    assert read() == 2


def test_autocommit_off_reads_of_written_tables_bypass_until_the_transaction_ends(newsroom, manual):
    from newsroom.models import Comment

    n = newsroom
    read = lambda: Comment.objects.filter(article=n.a2).count()  # noqa: E731
    Comment.objects.filter(article=n.a2).delete()
    bypassed = stats["bypass:written in this transaction"]
    assert read() == 0  # its own write, from the database
    assert stats["bypass:written in this transaction"] == bypassed + 1
    transaction.rollback()
    # Nothing the transaction saw was stored for others: the committed count comes back.
    assert read() == 1


def test_autocommit_off_a_read_before_a_write_in_the_same_transaction_is_not_stored_stale(
    newsroom, manual
):
    from newsroom.models import Comment

    n = newsroom
    transaction.commit()
    read = lambda: Comment.objects.filter(article=n.a2).count()  # noqa: E731
    assert read() == 1
    with transaction.atomic():
        Comment.objects.create(article=n.a2, user=n.ann, body="one more")
    transaction.commit()
    assert read() == 2


def test_a_durable_block_and_nested_on_commit_writes_are_invalidated(newsroom):
    from newsroom.models import Article, Comment

    n = newsroom
    count = lambda: Comment.objects.filter(article=n.a3).count()  # noqa: E731
    title = lambda: Article.objects.get(pk=n.a3.pk).title  # noqa: E731
    count(), title()

    def after_commit():  # runs after the durable block commits, in autocommit
        Article.objects.filter(pk=n.a3.pk).update(title="retitled on commit")

    with transaction.atomic(durable=True):
        Comment.objects.create(article=n.a3, user=n.ann, body="durable")
        transaction.on_commit(after_commit)
    assert count() == 2
    assert title() == "retitled on commit"


def test_a_rolled_back_savepoint_leaves_no_phantom_and_the_commit_is_seen(newsroom):
    from newsroom.models import Article

    n = newsroom
    title = lambda: Article.objects.get(pk=n.a1.pk).title  # noqa: E731
    assert title() == "A1"
    with transaction.atomic():
        Article.objects.filter(pk=n.a1.pk).update(title="kept")
        try:
            with transaction.atomic():
                Article.objects.filter(pk=n.a1.pk).update(title="undone")
                raise RuntimeError
        except RuntimeError:
            pass
        assert title() == "kept"
    assert title() == "kept"
    assert probe(title) == "hit"


def test_atomic_requests_invalidate_when_the_request_commits(newsroom, client, monkeypatch):
    from newsroom.models import Comment

    n = newsroom
    read = lambda: Comment.objects.filter(article=n.a1).count()  # noqa: E731
    assert read() == 2
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    client.force_login(n.bob)
    response = client.post(f"/articles/{n.a1.slug}/", {"body": "through a view"})
    assert response.status_code in (200, 302), response.content[:300]
    assert read() == 3


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite has no row locks (FOR UPDATE is ignored)"
)
def test_reads_after_select_for_update_see_what_the_lock_holder_committed(
    transactional_db, monkeypatch
):
    """django-treebeard's add_child: lock the parent, read its last child, add the next.

    The writer that held the lock commits, then changes its versions: a read made in
    between by the transaction that waited for the lock must not come from the cache.
    """
    import threading

    from django.db import connections

    from strata.tags import invalidation
    from tests.ormapp.models import Node

    parent = Node.objects.create(path="0001", depth=1, numchild=1, name="parent")
    Node.objects.create(path="00010001", depth=2, name="first")

    def last_child():
        return Node.objects.filter(path__startswith="0001", depth=2).order_by("-path").first().path

    assert last_child() == "00010001"
    assert probe(last_child) == "hit"

    committed, read_done = threading.Event(), threading.Event()
    holding = threading.Event()
    real_bump = invalidation.bump_now

    def slow_bump(tags, using):  # the lock holder's versions change only after our read
        if threading.current_thread().name == "lock-holder":
            committed.set()
            read_done.wait(30)
        return real_bump(tags, using)

    monkeypatch.setattr(invalidation, "bump_now", slow_bump)

    def lock_holder():
        try:
            with transaction.atomic():
                Node.objects.select_for_update().get(pk=parent.pk)
                holding.set()
                Node.objects.create(path="00010002", depth=2, name="second")
        finally:
            connections.close_all()

    thread = threading.Thread(target=lock_holder, name="lock-holder")
    thread.start()
    assert holding.wait(30)
    try:
        with transaction.atomic():
            Node.objects.select_for_update().get(pk=parent.pk)  # waits for the holder
            assert committed.wait(30)  # it committed; its versions wait for our read
            seen = last_child()
    finally:
        read_done.set()
        thread.join(30)
    assert seen == "00010002"
