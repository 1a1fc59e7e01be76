"""A project's query-count tests read the same with Strata as without it.

``assertNumQueries`` counts what Django's query log holds. A write adds nothing to it:
on PostgreSQL its old and new values come from the write itself (one statement), and
where a separate read stays necessary (an UPDATE on SQLite) it runs below the query log
(``strata.querycache.bookkeeping``). While queries are captured, reads go to the
database as they would without Strata (and are stored for later).
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from strata.querycache.stats import stats
from tests.querycache.conftest import probe


def statements(captured) -> list[str]:
    """The captured SQL, without transaction control (Django's own BEGIN on SQLite)."""
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"] not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT")
    ]


def test_save_update_and_delete_add_no_statement_to_the_query_log(newsroom):
    from newsroom.models import Article, Comment

    n = newsroom
    comment = Comment.objects.filter(article=n.a1).first()
    comment.body = "edited"
    with CaptureQueriesContext(connection) as saved:
        comment.save()
    with CaptureQueriesContext(connection) as updated:
        Article.objects.filter(author=n.author1).update(body="new body")
    with CaptureQueriesContext(connection) as deleted:
        Comment.objects.filter(pk=comment.pk).delete()
    assert [len(statements(c)) for c in (saved, updated, deleted)] == [1, 1, 1]
    assert stats["invalidate"] >= 3


def test_an_update_on_postgresql_is_one_statement_that_returns_old_and_new_values(newsroom):
    from newsroom.models import Article

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's UPDATE ... FROM ... RETURNING")
    n = newsroom
    executed = []

    def watch(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        Article.objects.filter(pk=n.a1.pk).update(author=n.author2)
    (sql,) = executed
    assert "FOR UPDATE" in sql and "RETURNING" in sql
    assert stats["bookkeeping"] == 0  # nothing ran beside it


def test_while_queries_are_captured_the_projects_sql_is_its_own(newsroom):
    from newsroom.models import Article, Comment

    n = newsroom
    with CaptureQueriesContext(connection) as captured:
        Article.objects.filter(pk=n.a1.pk).update(author=n.author2)
        Comment.objects.filter(article=n.a3).delete()
    updated, deleted = statements(captured)
    assert "RETURNING" not in updated and "strata" not in updated
    assert "RETURNING" not in deleted
    assert Article.objects.get(pk=n.a1.pk).author_id == n.author2.pk
    assert Comment.objects.filter(article=n.a3).count() == 0


def test_reads_go_to_the_database_while_queries_are_captured(newsroom, django_assert_num_queries):
    from newsroom.models import Article

    n = newsroom
    read = lambda: Article.objects.get(pk=n.a1.pk)  # noqa: E731
    read()
    assert probe(read) == "hit"
    with django_assert_num_queries(1):
        read()
    assert probe(read) == "hit"  # and the cache still answers outside the capture


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks of PostgreSQL")
def test_old_values_are_the_committed_ones_when_a_concurrent_write_held_the_row(newsroom):
    """A concurrent writer moves a comment to a2 and commits while our UPDATE waits for
    its lock. Our UPDATE must report a2 (not a1, what it saw before waiting) as the old
    value: a read that cached a2's comments before we commit must then be invalidated."""
    from newsroom.models import Comment

    n = newsroom
    comment = Comment.objects.filter(article=n.a1).first()
    of_a2 = lambda: sorted(Comment.objects.filter(article=n.a2).values_list("pk", flat=True))  # noqa: E731
    already = of_a2()
    others_hold, others_commit = threading.Event(), threading.Event()
    we_wrote, we_commit = threading.Event(), threading.Event()
    our_pid = []

    def concurrent_writer():
        try:
            with transaction.atomic():
                Comment.objects.filter(pk=comment.pk).update(article=n.a2)
                others_hold.set()
                others_commit.wait(30)
        finally:
            connections.close_all()

    def our_writer():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                our_pid.append(cursor.fetchone()[0])
            with transaction.atomic():
                Comment.objects.filter(pk=comment.pk).update(article=n.a3)
                we_wrote.set()
                we_commit.wait(30)
        finally:
            connections.close_all()

    other = threading.Thread(target=concurrent_writer)
    other.start()
    assert others_hold.wait(30)
    ours = threading.Thread(target=our_writer)
    ours.start()
    with connection.cursor() as cursor:  # until our UPDATE waits for the row lock
        for _ in range(3000):
            if our_pid:
                cursor.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", our_pid
                )
                row = cursor.fetchone()
                if row and row[0] == "Lock":
                    break
            threading.Event().wait(0.01)
        else:
            pytest.fail("our UPDATE never waited for the row lock")
    others_commit.set()
    other.join(30)
    assert we_wrote.wait(30)
    assert of_a2() == sorted(
        [*already, comment.pk]
    )  # committed: the comment is in a2 (ours is not yet)
    assert probe(of_a2) == "hit"
    we_commit.set()
    ours.join(30)
    assert of_a2() == already  # our commit moved it to a3: a2's cached read must have gone
    assert Comment.objects.get(pk=comment.pk).article_id == n.a3.pk
