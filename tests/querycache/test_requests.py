"""Inside a request, cache misses are stored together once the response is done."""

from __future__ import annotations

from strata.querycache.stats import stats
from strata.tags.versions import defer_stores, flush_deferred_stores
from tests.querycache.conftest import probe


def test_a_page_served_twice_is_read_from_the_cache_the_second_time(newsroom, client, settings):
    settings.STRATA = {**settings.STRATA, "PAGE_CACHE": None}  # the queries, not the page
    response = client.get("/articles/a1/")
    assert response.status_code == 200
    misses, hits = stats["miss"], stats["hit"]
    assert misses > 0
    again = client.get("/articles/a1/")
    assert again.content == response.content
    assert stats["miss"] == misses and stats["hit"] > hits


def test_a_write_between_the_read_and_the_deferred_store_wins(newsroom):
    from newsroom.models import Comment

    n = newsroom
    read = lambda: Comment.objects.filter(article=n.a3).count()  # noqa: E731
    defer_stores()
    try:
        before = read()  # a miss whose result waits to be stored...
        Comment.objects.create(article=n.a3, user=n.ann, body="meanwhile")  # ...a commit...
    finally:
        flush_deferred_stores()  # ...and only then the store
    assert probe(read) == "miss"
    assert read() == before + 1


def test_a_missing_version_created_late_loses_to_a_write_in_between(newsroom, settings):
    from django.core.cache import caches

    from newsroom.models import Comment
    from strata.tags.versions import VERSION_PREFIX

    n = newsroom
    caches["default"].delete(VERSION_PREFIX + f"newsroom_comment.article_id={n.a3.id}")
    read = lambda: Comment.objects.filter(article=n.a3).count()  # noqa: E731
    defer_stores()
    try:
        before = read()
        Comment.objects.create(article=n.a3, user=n.ann, body="meanwhile")
    finally:
        flush_deferred_stores()
    assert read() == before + 1
