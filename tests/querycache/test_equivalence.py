"""Every kind of ORM read returns the same from the cache as from the database."""

from __future__ import annotations

import pytest
from django.db.models import Count, Exists, Max, OuterRef, Q, Subquery

from strata.api import caching_disabled
from tests.querycache.conftest import probe


def battery(n):
    from django.contrib.auth.models import User

    from newsroom.models import Article, Author, Comment, Tag

    newest_comment = Comment.objects.filter(article=OuterRef("pk")).order_by("-id")
    return {
        "iteration": lambda: [a.title for a in Article.objects.order_by("id")],
        "get": lambda: Article.objects.get(slug="a2").title,
        "first/last": lambda: (
            Article.objects.order_by("id").first().slug,
            Article.objects.order_by("id").last().slug,
        ),
        "count": lambda: Comment.objects.filter(article=n.a1).count(),
        "exists": lambda: (
            Comment.objects.filter(article=n.a3).exists(),
            Comment.objects.filter(body="nope").exists(),
        ),
        "aggregate": lambda: Comment.objects.aggregate(n=Count("id"), top=Max("article_id")),
        "values": lambda: list(Article.objects.order_by("id").values("slug", "author__name")),
        "values_list flat": lambda: list(
            Tag.objects.order_by("slug").values_list("slug", flat=True)
        ),
        "select_related": lambda: [
            (c.id, c.article.slug, c.user.username)
            for c in Comment.objects.select_related("article", "user").order_by("id")
        ],
        "prefetch_related": lambda: [
            (a.slug, [t.slug for t in a.tags.all()], sorted(c.id for c in a.comments.all()))
            for a in Article.objects.prefetch_related("tags", "comments").order_by("id")
        ],
        "annotate": lambda: list(
            Author.objects.annotate(n=Count("articles")).order_by("slug").values_list("slug", "n")
        ),
        "subquery": lambda: list(
            Article.objects.annotate(last=Subquery(newest_comment.values("id")[:1]))
            .order_by("id")
            .values_list("slug", "last")
        ),
        "exists subquery": lambda: list(
            Article.objects.filter(
                Exists(Comment.objects.filter(article=OuterRef("pk"), user=n.bob))
            )
            .order_by("id")
            .values_list("slug", flat=True)
        ),
        # On a model without Meta.ordering: Django 6.1 on SQLite rejects a union of
        # ordered querysets even with .order_by() cleared.
        "union": lambda: sorted(
            User.objects.filter(username="ann")
            .values_list("username", flat=True)
            .union(User.objects.filter(username="bob").values_list("username", flat=True))
        ),
        "or": lambda: sorted(
            Article.objects.filter(Q(slug="a1") | Q(slug="a3")).values_list("slug", flat=True)
        ),
        "in": lambda: sorted(
            Comment.objects.filter(article_id__in=[n.a1.id, n.a2.id]).values_list("id", flat=True)
        ),
        "slice": lambda: [a.slug for a in Article.objects.order_by("-published_at")[1:3]],
        "empty in": lambda: list(Article.objects.filter(id__in=[])),
        "dates": lambda: list(Article.objects.dates("published_at", "day")),
    }


@pytest.mark.parametrize(
    "name",
    sorted(
        battery.__code__.co_consts[-1]
        if False
        else [
            "iteration",
            "get",
            "first/last",
            "count",
            "exists",
            "aggregate",
            "values",
            "values_list flat",
            "select_related",
            "prefetch_related",
            "annotate",
            "subquery",
            "exists subquery",
            "union",
            "or",
            "in",
            "slice",
            "dates",
        ]
    ),
)
def test_cached_results_equal_uncached_results(newsroom, name):
    read = battery(newsroom)[name]
    with caching_disabled():
        expected = read()
    first = read()
    assert probe(read) == "hit", "the second read did not come from the cache"
    assert first == expected
    assert read() == expected


def test_an_empty_in_list_is_answered_without_the_cache_or_the_database(newsroom):
    assert battery(newsroom)["empty in"]() == []
