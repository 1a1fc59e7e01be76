"""Fixtures for the query cache: a small newsroom, a clean cache, and a hit/miss probe.

These tests run on whatever ``DATABASE_URL``/``CACHE_URL`` name: SQLite and the local
cache by default; PostgreSQL with Redis or Memcached under ``tests/backends.py``.
Invalidation happens after commit, so the tests use real transactions
(``transactional_db``), not the rolled-back ones of ``django_db``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.exceptions import ObjectDoesNotExist

from strata.conf import strata_settings
from strata.querycache.stats import reset_stats, stats
from strata.tags import versions
from strata.tags.stores import version_store


@pytest.fixture(autouse=True)
def clean_cache():
    version_store.cache_clear()  # forget a cache outage another test staged
    versions.outage_warnings.last.clear()  # each test sees its own first warning
    caches[strata_settings().cache_alias].clear()
    reset_stats()
    yield


@dataclass
class Newsroom:
    ann: object
    bob: object
    author1: object
    author2: object
    a1: object
    a2: object
    a3: object
    tag_x: object
    tag_y: object


@pytest.fixture
def newsroom(transactional_db) -> Newsroom:
    from newsroom.models import Article, Author, Comment, Tag

    ann = User.objects.create(username="ann")
    bob = User.objects.create(username="bob")
    author1 = Author.objects.create(name="One", slug="one", bio="")
    author2 = Author.objects.create(name="Two", slug="two", bio="")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    a1 = Article.objects.create(title="A1", slug="a1", author=author1, body="b1", published_at=t0)
    a2 = Article.objects.create(
        title="A2", slug="a2", author=author1, body="b2", published_at=t0 + timedelta(hours=1)
    )
    a3 = Article.objects.create(
        title="A3", slug="a3", author=author2, body="b3", published_at=t0 + timedelta(hours=2)
    )
    tag_x = Tag.objects.create(name="X", slug="x")
    tag_y = Tag.objects.create(name="Y", slug="y")
    a1.tags.add(tag_x)
    a2.tags.add(tag_y)
    for article, user in ((a1, ann), (a1, bob), (a2, ann), (a3, bob)):
        Comment.objects.create(article=article, user=user, body="c", created_at=t0)
    caches[strata_settings().cache_alias].clear()
    reset_stats()
    return Newsroom(ann, bob, author1, author2, a1, a2, a3, tag_x, tag_y)


def probe(read) -> str:
    """Run ``read`` and say whether the query cache answered it: 'hit' or 'miss'."""
    hits, misses = stats["hit"], stats["miss"]
    with contextlib.suppress(ObjectDoesNotExist):  # a read of a deleted row is still a read
        read()
    if stats["miss"] > misses:
        return "miss"
    if stats["hit"] > hits:
        return "hit"
    raise AssertionError("the read went neither to the cache nor through it (bypassed)")
