"""Raw SQL through a cursor: which tables a statement may write (pure parsing)."""

from __future__ import annotations

import pytest

from strata.querycache.analysis import is_nondeterministic, raw_write_tables


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("INSERT INTO newsroom_comment (body) VALUES (%s)", {"newsroom_comment"}),
        ('insert into "newsroom_comment" values (1)', {"newsroom_comment"}),
        ("INSERT OR REPLACE INTO newsroom_tag VALUES (1, 'x', 'x')", {"newsroom_tag"}),
        ("REPLACE INTO newsroom_tag VALUES (1, 'x', 'x')", {"newsroom_tag"}),
        ("UPDATE newsroom_article SET title = 'x' WHERE id = 1", {"newsroom_article"}),
        ("UPDATE ONLY public.newsroom_article SET title = 'x'", {"newsroom_article"}),
        ("  /* hint */ DELETE FROM `newsroom_comment` WHERE id = 2", {"newsroom_comment"}),
        ("TRUNCATE newsroom_comment, newsroom_article", {"newsroom_comment", "newsroom_article"}),
        ("TRUNCATE TABLE newsroom_tag", {"newsroom_tag"}),
        (
            "MERGE INTO newsroom_tag t USING src s ON t.id = s.id WHEN MATCHED THEN UPDATE SET name = s.name",
            {"newsroom_tag"},
        ),
        ("ALTER TABLE newsroom_article ADD COLUMN x int", {"newsroom_article"}),
        ("DROP TABLE IF EXISTS newsroom_tag", {"newsroom_tag"}),
        # A statement that writes one table and reads another: both, to be safe.
        (
            "UPDATE newsroom_article SET title = (SELECT name FROM newsroom_tag LIMIT 1)",
            {"newsroom_article", "newsroom_tag"},
        ),
    ],
)
def test_writes_name_their_tables(sql, tables):
    assert raw_write_tables(sql) == tables


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM newsroom_article",
        "(SELECT 1) UNION (SELECT 2)",
        "SAVEPOINT s1",
        "RELEASE SAVEPOINT s1",
        "SET TIME ZONE 'UTC'",
        "EXPLAIN SELECT 1",
        "PRAGMA foreign_keys = ON",
        "CREATE TABLE x (id int)",
        "CREATE INDEX i ON newsroom_article (title)",
        "BEGIN",
        "COMMIT",
    ],
)
def test_reads_and_bookkeeping_write_nothing(sql):
    assert raw_write_tables(sql) == frozenset()


@pytest.mark.parametrize(
    "sql",
    [
        "CALL refresh_everything()",
        "DO $$ BEGIN DELETE FROM newsroom_tag; END $$",
        "UPDATE newsroom_tag SET name = 'a'; DELETE FROM newsroom_article",
        "WITH gone AS (DELETE FROM newsroom_tag RETURNING id) SELECT count(*) FROM gone",
        "COPY newsroom_tag FROM stdin",
        "VACUUM",
    ],
)
def test_writes_that_cannot_be_told_invalidate_everything(sql):
    assert raw_write_tables(sql) is None


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t ORDER BY RANDOM()", True),
        ("SELECT * FROM t ORDER BY RAND()", True),
        ("SELECT * FROM t WHERE created < NOW()", True),
        ("SELECT * FROM t WHERE created < CURRENT_TIMESTAMP", True),
        ("SELECT * FROM t WHERE created < datetime('now')", True),
        ('SELECT "t"."random_id", "t"."nowhere" FROM "t"', False),
        ("SELECT * FROM t WHERE name = %s", False),
    ],
)
def test_nondeterministic_sql_is_recognised(sql, expected):
    assert is_nondeterministic(sql) is expected
