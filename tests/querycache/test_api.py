"""The public API: invalidate by hand, read the recorder's tags."""

from __future__ import annotations

from strata import api
from tests.querycache.conftest import probe


def test_the_recorder_collects_tags_of_reads_even_from_cache(newsroom):
    from newsroom.models import Comment

    n = newsroom
    read = lambda: list(Comment.objects.filter(article_id=n.a1.id))  # noqa: E731
    with api.recording() as outer:
        read()
        with api.recording() as inner:
            read()  # a cache hit
        assert api.current_tags() == outer.tags
    expected = {"*", "newsroom_comment.bulk", f"newsroom_comment.article_id={n.a1.id}"}
    assert inner.tags == expected
    assert outer.tags == expected
    assert not outer.inconsistent
    assert outer.uncacheable is None


def test_a_read_that_bypasses_the_cache_marks_the_recorder_uncacheable(newsroom):
    from newsroom.models import Article

    with api.recording() as recorder:
        list(Article.objects.order_by("?"))  # nondeterministic: read, not cached, tags unknown
    assert recorder.uncacheable == "a read bypassed the query cache (nondeterministic)"
    with api.recording() as recorder, api.caching_disabled():
        list(Article.objects.all())
    assert recorder.uncacheable == "a read bypassed the query cache (caching disabled)"


def test_invalidate_model_instance_queryset_and_tags(newsroom):
    from newsroom.models import Article, Comment

    n = newsroom
    by_pk = lambda: Article.objects.get(pk=n.a1.pk)  # noqa: E731
    other = lambda: Article.objects.get(pk=n.a2.pk)  # noqa: E731
    comments = lambda: list(Comment.objects.filter(article_id=n.a1.id))  # noqa: E731
    for read in (by_pk, other, comments):
        read()

    api.invalidate_instance(n.a1)
    assert (probe(by_pk), probe(other)) == ("miss", "hit")

    api.invalidate_queryset(Comment.objects.filter(article_id=n.a1.id))
    assert probe(comments) == "miss"

    api.invalidate_tags(f"newsroom_article.id={n.a2.id}")
    assert probe(other) == "miss"

    api.invalidate_model(Article)
    assert (probe(by_pk), probe(other), probe(comments)) == ("miss", "miss", "hit")

    api.invalidate_all()
    assert probe(comments) == "miss"


def test_invalidating_a_child_instance_reaches_every_table_of_its_inheritance(transactional_db):
    from tests.ormapp.models import Place, Restaurant

    luigi = Restaurant.objects.create(name="Luigi", cuisine="pizza")
    by_parent = lambda: Place.objects.get(pk=luigi.pk).name  # noqa: E731
    by_child = lambda: Restaurant.objects.get(pk=luigi.pk).cuisine  # noqa: E731
    by_parent(), by_child()
    assert probe(by_parent) == probe(by_child) == "hit"
    api.invalidate_instance(luigi)
    assert probe(by_parent) == "miss"
    assert probe(by_child) == "miss"
