"""``strata.signals``: what a receiver of ``post_invalidation`` and ``schema_changed`` gets."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from strata.conf import strata_settings
from strata.querycache.schema import table_info
from strata.signals import post_invalidation, schema_changed
from strata.tags.naming import condition_tag
from strata.tags.stores import version_store
from tests.querycache.conftest import probe


@pytest.fixture
def invalidations():
    """The keyword arguments of every ``post_invalidation`` sent during the test."""
    sent: list[dict] = []

    def receiver(sender, **kwargs):
        sent.append({"sender": sender, **kwargs})

    post_invalidation.connect(receiver)
    yield sent
    post_invalidation.disconnect(receiver)


def test_a_committed_write_sends_its_tags_and_database_after_the_commit(newsroom, invalidations):
    from newsroom.models import Comment

    n = newsroom
    with transaction.atomic():
        Comment.objects.create(article=n.a1, user=n.ann, body="first!")
        assert invalidations == []  # not before the commit
    [sent] = invalidations
    assert condition_tag("newsroom_comment", "article_id", n.a1.id) in sent["tags"]
    assert isinstance(sent["tags"], frozenset)
    assert sent["using"] == "default"
    assert sent["changed"] is True
    assert sent["sender"] is version_store(strata_settings().cache_alias)


def test_a_rolled_back_write_sends_nothing(newsroom, invalidations):
    from newsroom.models import Comment

    n = newsroom
    with pytest.raises(RuntimeError), transaction.atomic():
        Comment.objects.create(article=n.a1, user=n.ann, body="never")
        raise RuntimeError("roll back")
    assert invalidations == []


def test_a_failing_receiver_is_logged_and_breaks_neither_the_write_nor_the_others(newsroom, caplog):
    from newsroom.models import Comment

    def broken(sender, **kwargs):
        raise ValueError("a receiver's own bug")

    later: list[frozenset[str]] = []

    def connected_after(sender, tags, **kwargs):
        later.append(tags)

    n = newsroom
    read = lambda: Comment.objects.filter(article=n.a1).count()  # noqa: E731
    assert probe(read) == "miss"
    assert probe(read) == "hit"
    post_invalidation.connect(broken)
    post_invalidation.connect(connected_after)
    try:
        with caplog.at_level(logging.ERROR, logger="strata.tags"):
            Comment.objects.create(article=n.a1, user=n.ann, body="still saved")
    finally:
        post_invalidation.disconnect(broken)
        post_invalidation.disconnect(connected_after)
    assert Comment.objects.filter(body="still saved").exists()
    assert probe(read) == "miss"  # the versions changed
    assert len(later) == 1  # the next receiver still ran
    assert any(
        r.name == "strata.tags" and "post_invalidation receiver" in r.getMessage()
        for r in caplog.records
    )


def test_changing_installed_apps_sends_schema_changed_and_forgets_the_tables(settings):
    sent = []

    def receiver(sender, **kwargs):
        sent.append(sender)

    schema_changed.connect(receiver)
    try:
        assert table_info("ormapp_ticket") is not None
        settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "tests.ormapp"]
        assert sent == [None]
        assert table_info("ormapp_ticket") is None
    finally:
        schema_changed.disconnect(receiver)
