"""Strata's own statements, run beside the application's and never counted as its own.

A write's old and new condition values are sometimes read with statements of their own
(an UPDATE on SQLite, any write on a database without ``RETURNING``). They run on a
DB-API cursor of the same connection (the same transaction, the same locks) below
Django's ``CursorWrapper``: Django's query log (``connection.queries``,
``assertNumQueries``, ``CaptureQueriesContext``), the project's execute wrappers, the
debug toolbar and Strata's own timing never see them, so a project's query-count tests
read the same with Strata as without it. They still run, every time: correctness does
not depend on being counted (``docs/design.md``, "The cache never breaks a write").

:func:`rows_held` is the scope that makes old values exact: nothing else can change the
rows between the read of their old values and the write.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import transaction

from ..tags.invalidation import OWN_TRANSACTION_ATTR, transaction_ended, transaction_open
from .stats import stats

__all__ = ["fetch", "execute", "rows_held", "holds_rows_with_for_update"]


@contextlib.contextmanager
def _cursor(connection) -> Iterator:
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.create_cursor()
    try:
        yield cursor
    finally:
        with contextlib.suppress(Exception):
            cursor.close()


def fetch(connection, sql: str, params=()) -> list[tuple]:
    """Run a statement of Strata's own and return its rows."""
    stats["bookkeeping"] += 1
    with _cursor(connection) as cursor, connection.wrap_database_errors:
        cursor.execute(sql, params)
        return cursor.fetchall()


def execute(connection, sql: str) -> None:
    """Run a statement of Strata's own that returns nothing (no parameters)."""
    stats["bookkeeping"] += 1
    with _cursor(connection) as cursor, connection.wrap_database_errors:
        cursor.execute(sql)


def holds_rows_with_for_update(connection) -> bool:
    """True when the database locks rows read with ``SELECT ... FOR UPDATE`` (not SQLite)."""
    return connection.vendor != "sqlite" and connection.features.has_select_for_update


@contextlib.contextmanager
def rows_held(connection, table: str, pk_column: str) -> Iterator[None]:
    """A scope in which rows read before a write cannot change until the write is done.

    * SQLite locks the whole database for writing. In autocommit: ``BEGIN IMMEDIATE``
      ... ``COMMIT`` of our own around the scope (no ``BEGIN`` in the project's query
      log). In a transaction: a write that changes no row takes the lock before the read
      (a deferred transaction would otherwise read, let another connection commit, and
      fail to write), exactly as the write itself would have.
    * Databases with ``SELECT ... FOR UPDATE``: reads inside lock their rows; in
      autocommit the scope is a transaction (``atomic``: no statement in the log on
      PostgreSQL, whose driver begins transactions itself).

    Invalidate after the scope, never inside it: in SQLite's autocommit the commit is
    ours, at the end of the scope.
    """
    if connection.vendor == "sqlite":
        if transaction_open(connection):
            quote = connection.ops.quote_name
            execute(
                connection,
                f"UPDATE {quote(table)} SET {quote(pk_column)} = {quote(pk_column)} WHERE 0 = 1",
            )
            yield
            return
        execute(connection, "BEGIN IMMEDIATE")
        setattr(connection, OWN_TRANSACTION_ATTR, True)
        committed = False
        try:
            yield
            execute(connection, "COMMIT")
            committed = True
        except BaseException:
            with contextlib.suppress(Exception):
                execute(connection, "ROLLBACK")
            raise
        finally:
            setattr(connection, OWN_TRANSACTION_ATTR, False)
            transaction_ended(connection, committed)
        return
    if transaction_open(connection):
        yield
        return
    with transaction.atomic(using=connection.alias, savepoint=False):
        yield
