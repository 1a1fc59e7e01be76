"""Several database aliases and DATABASE_ROUTERS: writes through one alias invalidate
reads through another, and each alias's transactions decide for themselves."""

from __future__ import annotations

import pytest
from django.db import connection, connections, transaction

from tests.querycache.conftest import probe

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


def test_a_write_on_the_primary_invalidates_reads_routed_to_the_replica(newsroom, settings):
    from newsroom.models import Comment

    n = newsroom
    settings.DATABASE_ROUTERS = ["tests.routers.PrimaryReplicaRouter"]
    read = lambda: Comment.objects.filter(article=n.a2).count()  # noqa: E731
    assert Comment.objects.filter(article=n.a2).db == "replica"
    before = read()
    assert probe(read) == "hit"
    Comment.objects.create(article=n.a2, user=n.ann, body="routed")  # to "default"
    assert probe(read) == "miss"
    assert read() == before + 1


def test_results_are_cached_per_alias(newsroom):
    from newsroom.models import Article

    n = newsroom
    Article.objects.using("default").get(pk=n.a1.pk)
    assert probe(lambda: Article.objects.using("replica").get(pk=n.a1.pk)) == "miss"
    assert probe(lambda: Article.objects.using("replica").get(pk=n.a1.pk)) == "hit"


def test_versions_change_when_the_writing_alias_commits(newsroom):
    from newsroom.models import Comment

    n = newsroom
    read = lambda: Comment.objects.using("replica").filter(article=n.a1).count()  # noqa: E731
    before = read()
    with transaction.atomic(using="default"):
        Comment.objects.using("default").create(article=n.a1, user=n.bob, body="x")
        # The replica's connection does not see the uncommitted row, and may cache that.
        assert read() == before
    assert read() == before + 1


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="two connections writing one SQLite file wait on each other",
)
def test_two_databases_in_one_transaction_each_invalidate_on_their_own_commit(newsroom):
    from newsroom.models import Article

    n = newsroom
    title = lambda alias, pk: Article.objects.using(alias).get(pk=pk).title  # noqa: E731
    title("default", n.a1.pk), title("replica", n.a2.pk)
    with transaction.atomic(using="default"):
        Article.objects.using("default").filter(pk=n.a1.pk).update(title="default wrote")
        try:
            with transaction.atomic(using="replica"):
                Article.objects.using("replica").filter(pk=n.a2.pk).update(title="undone")
                raise RuntimeError
        except RuntimeError:
            pass
    assert title("replica", n.a1.pk) == "default wrote"
    assert title("default", n.a2.pk) == "A2"
    assert not connections["replica"].in_atomic_block
