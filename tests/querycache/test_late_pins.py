"""Joined rows named by key: a read depends on the rows it returned, not on their table.

``Comment.objects.filter(article=a1).select_related("user")`` shows a1's commenters.
A login elsewhere (``last_login`` of another user) or a new user cannot change it; an
edit of one of its commenters must.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from strata.querycache import analysis
from tests.querycache.conftest import probe

pytestmark = pytest.mark.django_db(transaction=True)


def comments_with_users(article):
    from newsroom.models import Comment

    return lambda: list(Comment.objects.filter(article=article).select_related("user"))


def test_another_user_logging_in_keeps_a_commenter_list_cached(newsroom):
    read = comments_with_users(newsroom.a3)  # only bob commented on a3
    probe(read)
    newsroom.ann.last_login = newsroom.a1.published_at
    newsroom.ann.save(update_fields=["last_login"])
    User.objects.create(username="newcomer")
    assert probe(read) == "hit"


def test_editing_a_listed_commenter_invalidates_the_list(newsroom):
    read = comments_with_users(newsroom.a3)
    probe(read)
    newsroom.bob.username = "robert"
    newsroom.bob.save()
    assert probe(read) == "miss"
    assert read()[0].user.username == "robert"


def test_an_update_of_unknown_users_invalidates_the_list(newsroom):
    read = comments_with_users(newsroom.a3)
    probe(read)
    User.objects.filter(username__startswith="b").update(first_name="B")
    assert probe(read) == "miss"


def test_a_write_to_the_joined_table_during_the_read_keeps_the_result_out_of_the_cache(
    newsroom, monkeypatch
):
    read = comments_with_users(newsroom.a3)
    real = analysis.late_row_tags

    def meanwhile(table, keys):
        # Another request commits a write to auth_user after our read, before the
        # versions of the rows we returned are taken.
        monkeypatch.setattr(analysis, "late_row_tags", real)
        User.objects.filter(pk=newsroom.ann.pk).update(first_name="A")
        return real(table, keys)

    from strata.querycache import reads

    monkeypatch.setattr(reads, "late_row_tags", meanwhile)
    assert probe(read) == "miss"
    monkeypatch.setattr(reads, "late_row_tags", real)
    assert probe(read) == "miss"  # nothing was stored by the raced read
    assert probe(read) == "hit"


def test_renaming_a_tag_keeps_articles_without_it_cached(newsroom):
    from newsroom.models import Article

    read = lambda: [  # noqa: E731
        list(a.tags.all())
        for a in Article.objects.filter(pk=newsroom.a1.pk).prefetch_related("tags")
    ]
    probe(read)
    newsroom.tag_y.name = "Y2"  # a1 is tagged X only
    newsroom.tag_y.save()
    assert probe(read) == "hit"
    newsroom.tag_x.name = "X2"
    newsroom.tag_x.save()
    assert probe(read) == "miss"
    assert read()[0][0].name == "X2"


def test_a_filter_on_the_joined_table_keeps_its_table_tag(newsroom):
    from newsroom.models import Comment

    read = lambda: list(  # noqa: E731
        Comment.objects.filter(article=newsroom.a1, user__first_name="").select_related("user")
    )
    probe(read)
    User.objects.create(username="another")  # could match the filter: must invalidate
    assert probe(read) == "miss"


def test_a_joined_table_ordered_under_a_limit_keeps_its_table_tag(newsroom):
    from newsroom.models import Comment

    def read():
        return list(Comment.objects.select_related("user").order_by("user__username")[:1])

    probe(read)
    newsroom.bob.username = "aaron"  # bob's comment now sorts first
    newsroom.bob.save()
    assert probe(read) == "miss"
