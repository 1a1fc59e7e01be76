"""Transactions: versions change after commit only; a transaction never caches its own writes."""

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


def test_versions_change_only_when_the_transaction_commits(newsroom):
    from newsroom.models import Comment

    n = newsroom
    tag = condition_tag("newsroom_comment", "article_id", n.a2.id)
    before = version_of(tag)
    with transaction.atomic():
        Comment.objects.create(article=n.a2, user=n.ann, body="x")
        assert version_of(tag) == before, "changed before commit"
    assert version_of(tag) != before


def test_inside_a_transaction_reads_of_a_written_table_bypass_the_cache(newsroom):
    from newsroom.models import Article, Comment

    n = newsroom
    count = Comment.objects.filter(article=n.a2).count()
    with transaction.atomic():
        Comment.objects.create(article=n.a2, user=n.ann, body="x")
        bypassed = stats["bypass:written in this transaction"]
        assert Comment.objects.filter(article=n.a2).count() == count + 1  # its own write
        assert stats["bypass:written in this transaction"] == bypassed + 1
        if connection.vendor == "postgresql":
            # An untouched table is still served from the cache (READ COMMITTED).
            Article.objects.get(pk=n.a1.pk)
            assert probe(lambda: Article.objects.get(pk=n.a1.pk)) == "hit"
    # After commit, the cache is used again and shows the write.
    assert Comment.objects.filter(article=n.a2).count() == count + 1


def test_a_rolled_back_transaction_leaves_the_cache_valid_and_correct(newsroom):
    from newsroom.models import Comment

    n = newsroom
    read = lambda: Comment.objects.filter(article=n.a2).count()  # noqa: E731
    count = read()
    with pytest.raises(RuntimeError), transaction.atomic():
        Comment.objects.filter(article=n.a2).delete()
        assert read() == 0
        raise RuntimeError("roll back")
    assert probe(read) == "hit"
    assert read() == count


def test_a_write_in_autocommit_is_visible_to_the_very_next_read(newsroom):
    from newsroom.models import Article

    n = newsroom
    assert Article.objects.get(pk=n.a1.pk).title == "A1"
    Article.objects.filter(pk=n.a1.pk).update(title="fresh")
    assert Article.objects.get(pk=n.a1.pk).title == "fresh"


def test_select_for_update_is_never_cached(newsroom):
    from newsroom.models import Article

    n = newsroom
    with transaction.atomic():
        misses, hits = stats["miss"], stats["hit"]
        Article.objects.select_for_update().get(pk=n.a1.pk)
        Article.objects.select_for_update().get(pk=n.a1.pk)
        assert (stats["miss"], stats["hit"]) == (misses, hits)


def test_random_ordering_is_not_cached_unless_asked(newsroom, settings):
    from newsroom.models import Article

    list(Article.objects.order_by("?"))
    assert stats["bypass:nondeterministic"] == 1
    settings.STRATA = {**settings.STRATA, "QUERY_CACHE": {"CACHE_NONDETERMINISTIC": True}}
    list(Article.objects.order_by("?"))
    assert probe(lambda: list(Article.objects.order_by("?"))) == "hit"


def test_excluded_tables_and_apps_are_not_cached(newsroom, settings):
    from django.contrib.auth.models import User

    from newsroom.models import Tag

    settings.STRATA = {
        **settings.STRATA,
        "QUERY_CACHE": {"EXCLUDE_TABLES": ["newsroom_tag"], "EXCLUDE_APPS": ["auth"]},
    }
    list(Tag.objects.all())
    list(User.objects.all())
    assert stats["bypass:excluded"] == 2


def test_caching_can_be_switched_off_for_a_block(newsroom):
    from newsroom.models import Tag
    from strata.api import caching_disabled

    list(Tag.objects.all())
    with caching_disabled():
        hits, misses = stats["hit"], stats["miss"]
        list(Tag.objects.all())
        assert (stats["hit"], stats["miss"]) == (hits, misses)
    assert probe(lambda: list(Tag.objects.all())) == "hit"
