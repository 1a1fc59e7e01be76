"""Which cached reads a write invalidates: exactly those it could have changed.

Each test warms a fixed set of reads, performs one kind of write, and states which
reads must now miss and which must still hit.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction
from django.db.models import Count, F

from tests.querycache.conftest import probe


def reads(n):
    """The watched reads, by name, for the newsroom ``n``."""
    from newsroom.models import Article, Comment

    a1_id, a2_id = n.a1.id, n.a2.id  # still usable after a1 is deleted
    return {
        "comments of a1": lambda: list(Comment.objects.filter(article_id=n.a1.id)),
        "comments of a2": lambda: list(Comment.objects.filter(article_id=n.a2.id)),
        "comment count of a3": lambda: Comment.objects.filter(article=n.a3).count(),
        "all comments": lambda: Comment.objects.count(),
        "article a1": lambda: Article.objects.get(pk=n.a1.pk),
        "article a2": lambda: Article.objects.get(pk=n.a2.pk),
        "article a3 by slug": lambda: Article.objects.get(slug="a3"),
        "articles of author2": lambda: list(Article.objects.filter(author_id=n.author2.id)),
        "tags of a1": lambda: list(Article(id=a1_id).tags.all()),
        "tags of a2": lambda: list(Article(id=a2_id).tags.all()),
        "home listing": lambda: list(
            Article.objects.annotate(c=Count("comments")).order_by("-published_at")[:20]
        ),
    }


def invalidated_by(n, write) -> set[str]:
    """Warm every watched read, run ``write``, return the reads that now miss."""
    watched = reads(n)
    for read in watched.values():
        read()
    for name, read in watched.items():
        assert probe(read) == "hit", f"{name} was not cached"
    write()
    return {name for name, read in watched.items() if probe(read) == "miss"}


def test_new_comment_on_a2_invalidates_a2s_comments_and_counts_only(newsroom):
    from newsroom.models import Comment

    n = newsroom
    gone = invalidated_by(n, lambda: Comment.objects.create(article=n.a2, user=n.ann, body="x"))
    assert gone == {"comments of a2", "all comments", "home listing"}


def test_editing_a_comment_on_a1_keeps_a2s_comments_cached(newsroom):
    from newsroom.models import Comment

    n = newsroom
    comment = Comment.objects.filter(article=n.a1).first()

    def edit():
        comment.body = "edited"
        comment.save()

    assert invalidated_by(n, edit) == {"comments of a1", "all comments", "home listing"}


def test_moving_a_comment_invalidates_both_articles(newsroom):
    from newsroom.models import Comment

    n = newsroom
    comment = Comment.objects.filter(article=n.a1).first()

    def move():
        comment.article = n.a3
        comment.save()

    assert invalidated_by(n, move) == {
        "comments of a1",
        "comment count of a3",
        "all comments",
        "home listing",
    }


def test_saving_one_article_keeps_the_others_cached(newsroom):
    n = newsroom

    def edit():
        n.a1.title = "A1 edited"
        n.a1.save()

    gone = invalidated_by(n, edit)
    assert gone == {"article a1", "home listing"}


def test_queryset_update_invalidates_the_rows_it_matched(newsroom):
    from newsroom.models import Article

    n = newsroom
    gone = invalidated_by(n, lambda: Article.objects.filter(author=n.author2).update(title="T"))
    assert gone == {"article a3 by slug", "articles of author2", "home listing"}


def test_update_with_an_expression_changing_a_condition_column(newsroom):
    from newsroom.models import Comment

    n = newsroom
    # Move a3's comment to a2 by arithmetic: the new value is only known after the write.
    offset = n.a2.id - n.a3.id
    gone = invalidated_by(
        n, lambda: Comment.objects.filter(article=n.a3).update(article_id=F("article_id") + offset)
    )
    assert gone == {"comments of a2", "comment count of a3", "all comments", "home listing"}


def test_save_with_an_expression_value(newsroom):
    from newsroom.models import Comment

    n = newsroom
    comment = Comment.objects.filter(article=n.a3).first()

    def move():
        # Django 6.1 saves this with UPDATE ... RETURNING.
        comment.article_id = F("article_id") + (n.a2.id - n.a3.id)
        comment.save()

    assert invalidated_by(n, move) == {
        "comments of a2",
        "comment count of a3",
        "all comments",
        "home listing",
    }


def test_deleting_a_comment_on_a1_keeps_a2_cached(newsroom):
    from newsroom.models import Comment

    n = newsroom
    gone = invalidated_by(n, lambda: Comment.objects.filter(article=n.a1).first().delete())
    assert gone == {"comments of a1", "all comments", "home listing"}


def test_deleting_an_article_cascades_to_its_comments_and_tag_links_only(newsroom):
    n = newsroom
    gone = invalidated_by(n, lambda: n.a1.delete())
    assert gone == {"comments of a1", "all comments", "article a1", "tags of a1", "home listing"}


def test_bulk_create_invalidates_the_articles_it_adds_to(newsroom):
    from newsroom.models import Comment

    n = newsroom
    gone = invalidated_by(
        n,
        lambda: Comment.objects.bulk_create(
            [Comment(article=n.a2, user=n.bob, body=str(i)) for i in range(3)]
        ),
    )
    assert gone == {"comments of a2", "all comments", "home listing"}


def test_a_bulk_create_past_the_row_limit_invalidates_the_whole_table(newsroom, settings):
    from newsroom.models import Comment

    n = newsroom
    settings.STRATA = {**settings.STRATA, "WRITE_ROW_LIMIT": 2}
    gone = invalidated_by(
        n,
        lambda: Comment.objects.bulk_create(
            [Comment(article=n.a2, user=n.bob, body=str(i)) for i in range(3)]
        ),
    )
    # Not only a2's comments: every read of the table, as an update of that many rows.
    assert gone == {"comments of a1", "comments of a2", "comment count of a3", "all comments"} | {
        "home listing"
    }


def test_bulk_update_invalidates_the_rows_it_updates(newsroom):
    from newsroom.models import Comment

    n = newsroom
    comments = list(Comment.objects.filter(article=n.a1))
    for comment in comments:
        comment.body = "bulk"
    gone = invalidated_by(n, lambda: Comment.objects.bulk_update(comments, ["body"]))
    assert gone == {"comments of a1", "all comments", "home listing"}


def test_get_or_create_and_update_or_create(newsroom):
    from newsroom.models import Article, Comment

    n = newsroom
    gone = invalidated_by(
        n, lambda: Comment.objects.get_or_create(article=n.a3, user=n.ann, body="new")
    )
    assert gone == {"comment count of a3", "all comments", "home listing"}
    gone = invalidated_by(
        n, lambda: Article.objects.update_or_create(slug="a2", defaults={"title": "A2!"})
    )
    assert gone == {"article a2", "home listing"}


def test_m2m_add_remove_clear_set_touch_only_that_articles_tags(newsroom):
    n = newsroom
    assert invalidated_by(n, lambda: n.a1.tags.add(n.tag_y)) == {"tags of a1"}
    assert invalidated_by(n, lambda: n.a1.tags.remove(n.tag_y)) == {"tags of a1"}
    assert invalidated_by(n, lambda: n.a1.tags.set([n.tag_y])) == {"tags of a1"}
    assert invalidated_by(n, lambda: n.a1.tags.clear()) == {"tags of a1"}


def test_m2m_from_the_other_side(newsroom):
    n = newsroom
    # tag_y.articles.add(a1): the link rows name a1, so a1's tag list changes.
    assert invalidated_by(n, lambda: n.tag_y.articles.add(n.a1)) == {"tags of a1"}
    assert invalidated_by(n, lambda: n.tag_y.articles.clear()) >= {"tags of a1", "tags of a2"}


def test_raw_sql_update_invalidates_the_table(newsroom):
    n = newsroom

    def raw():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE newsroom_comment SET body = %s WHERE id = %s", ["r", 1])

    gone = invalidated_by(n, raw)
    assert gone == {
        "comments of a1",
        "comments of a2",
        "comment count of a3",
        "all comments",
        "home listing",
    }


def test_unparseable_raw_sql_invalidates_everything(newsroom):
    n = newsroom

    def raw():
        with connection.cursor() as cursor:
            cursor.execute(
                "/* maintenance */ UPDATE newsroom_comment SET body = body; "
                "UPDATE newsroom_article SET title = title"
            )

    if connection.vendor == "sqlite":
        pytest.skip("sqlite3 executes one statement per call")
    assert invalidated_by(n, raw) == set(reads(n))


def test_a_rolled_back_write_invalidates_nothing(newsroom):
    from newsroom.models import Comment

    n = newsroom

    def rolled_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            Comment.objects.create(article=n.a2, user=n.ann, body="x")
            raise RuntimeError

    assert invalidated_by(n, rolled_back) == set()


def test_a_rolled_back_savepoint_invalidates_only_what_committed(newsroom):
    from newsroom.models import Comment

    n = newsroom

    def partly():
        with transaction.atomic():
            Comment.objects.create(article=n.a1, user=n.ann, body="kept")
            try:
                with transaction.atomic():
                    Comment.objects.create(article=n.a2, user=n.ann, body="undone")
                    raise RuntimeError
            except RuntimeError:
                pass

    assert invalidated_by(n, partly) == {"comments of a1", "all comments", "home listing"}


def test_loaddata_invalidates_what_it_loads(newsroom, tmp_path):
    from django.core.management import call_command

    n = newsroom
    fixture = tmp_path / "comment.json"
    fields = {
        "article": n.a2.id,
        "user": n.ann.id,
        "body": "loaded",
        "created_at": "2026-01-01T00:00:00Z",
    }
    fixture.write_text(json.dumps([{"model": "newsroom.comment", "pk": 9001, "fields": fields}]))
    gone = invalidated_by(n, lambda: call_command("loaddata", str(fixture), verbosity=0))
    assert gone == {"comments of a2", "all comments", "home listing"}


def test_a_migration_invalidates_everything(newsroom):
    from django.core.management import call_command

    n = newsroom
    gone = invalidated_by(n, lambda: call_command("migrate", verbosity=0))
    assert gone == set(reads(n))
