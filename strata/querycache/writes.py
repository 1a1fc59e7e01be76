"""What a write changed: its rows' old and new condition values, then invalidation.

Every ORM write ends in one of three compilers, raw SQL in the cursor; the hooks in
:mod:`strata.querycache.monkey_patch` hand them here.

* **UPDATE on PostgreSQL**: one statement. The project's UPDATE becomes
  ``UPDATE t SET ... FROM (SELECT pk, columns FROM t WHERE ... FOR UPDATE) AS old
  WHERE t.pk = old.pk RETURNING old.columns, t.columns``: the sub-select locks the rows
  and reads their committed values (READ COMMITTED re-reads a row that changed while
  it waited), the UPDATE writes them, RETURNING reports both sides.
* **DELETE on PostgreSQL and SQLite**: ``DELETE ... RETURNING columns``, one statement.
* **UPDATE on SQLite, anything elsewhere**: the old values are read just before the write
  and the new ones just after, with the rows held in between
  (:func:`strata.querycache.bookkeeping.rows_held`), by statements that no query log
  counts.
* **INSERT**: the new rows' values are the model instances' attributes (primary keys from
  ``RETURNING``).

The columns come from the model that compiled the statement, and only when that model is
the registered owner of the table and declares every condition column itself
(:meth:`strata.querycache.schema.TableInfo.knows_rows_of`). Otherwise (a historical model
in a migration, a model made at run time), and for any statement whose shape is not the
one expected, and while ``migrate`` runs, the write runs untouched and its whole table is
invalidated. A fault in this module is logged once and ends the same way
(:mod:`strata.querycache.faults`).
"""

from __future__ import annotations

import contextlib
import itertools
import re

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import DatabaseError, connections
from django.db.models.constants import OnConflict
from django.db.models.signals import post_migrate, pre_migrate
from django.db.models.sql.constants import NO_RESULTS, ROW_COUNT

from ..conf import strata_settings
from ..metrics.registry import INVALIDATION_ROWS
from ..tags.invalidation import invalidate_after_commit, note_row_locks, transaction_open
from ..tags.naming import ALL, bulk_tag, new_rows_tag, table_tag
from ..tags.recorder import recording_active, taint
from .analysis import raw_write_tables, row_tags
from .bookkeeping import execute, fetch, holds_rows_with_for_update, rows_held
from .control import in_orm
from .faults import report_fault
from .schema import TableInfo, db_cascade_tables, known_tables, table_info
from .stats import stats

__all__ = ["update", "update_returning", "delete", "insert", "raw", "install_signals"]

_SEEN = "_strata_write_seen"
_OLD = "strata_old"


def _first_time(compiler) -> bool:
    """True the first time a hook sees this compiler (Django 6.1 chains its own calls)."""
    if getattr(compiler, _SEEN, False):
        return False
    setattr(compiler, _SEEN, True)
    return True


# -- while migrate runs -----------------------------------------------------------------

_migrating = 0


def _migrate_started(**kwargs) -> None:
    global _migrating
    _migrating += 1


def _migrate_finished(using="default", **kwargs) -> None:
    global _migrating
    _migrating = max(0, _migrating - 1)
    invalidate_after_commit(using, {ALL})  # schema and data changed under every artifact


def install_signals() -> None:
    """While ``migrate`` runs, every write invalidates its whole table; then everything."""
    pre_migrate.connect(_migrate_started, dispatch_uid="strata-migrate-started")
    post_migrate.connect(_migrate_finished, dispatch_uid="strata-migrate-finished")


# -- what is written --------------------------------------------------------------------


def _rows_known(compiler) -> TableInfo | None:
    """The table's info when this write can name its rows, else None (invalidate broadly)."""
    model = compiler.query.model
    if model is None or _migrating:
        return None
    info = table_info(model._meta.db_table)
    if info is None or not info.knows_rows_of(model):
        return None
    return info


def _whole(*tables: str) -> set[str]:
    """The tags that every read of ``tables`` depends on: their table and bulk tags."""
    return {tag for table in tables for tag in (table_tag(table), bulk_tag(table))}


def _row_tags_of(info: TableInfo, before, after) -> set[str]:
    """Tags of a write whose old rows are ``before`` (None: too many) and new ``after``."""
    tags = {table_tag(info.table)}
    INVALIDATION_ROWS.inc(max(len(before or ()), len(after or ())))
    if before is None or after is None:
        tags.add(bulk_tag(info.table))
    tags |= row_tags(info.table, before or [])
    tags |= row_tags(info.table, after or [])
    return tags


def _invalidate(connection, tags: set[str], tables) -> None:
    invalidate_after_commit(connection.alias, tags, tables)
    stats["invalidate"] += 1


def _cascades(model) -> frozenset[str]:
    try:
        return db_cascade_tables(model)
    except Exception:
        report_fault("following database-level cascades")
        return frozenset({ALL})


# -- SQL pieces -------------------------------------------------------------------------


class _Shape:
    """The statement's table, its WHERE clause, and how to read its condition columns."""

    def __init__(self, compiler, info: TableInfo, where: str, where_params: tuple):
        connection = compiler.connection
        quote = connection.ops.quote_name
        self.connection = connection
        self.info = info
        self.table = quote(info.table)
        self.columns = info.condition_columns
        self.where = where
        self.where_params = tuple(where_params)
        self.quoted = [f"{self.table}.{quote(c)}" for c in self.columns]
        self.quote = quote

    def old_values_sql(self, limit: int | None) -> str:
        """Read the rows the WHERE matches (locked where the database can)."""
        sql = f"SELECT {', '.join(self.quoted)} FROM {self.table} WHERE {self.where}"
        if limit is not None:
            sql += " " + self.connection.ops.limit_offset_sql(None, limit + 1)
        if holds_rows_with_for_update(self.connection):
            sql += " " + self.connection.ops.for_update_sql()
        return sql

    def new_values(self, before: list[dict]) -> list[dict]:
        """The rows ``before`` named, read again by primary key (after the write)."""
        pk_columns = self.info.pk_columns
        keys = [tuple(row[c] for c in pk_columns) for row in before]
        rows: list[tuple] = []
        for chunk in _chunks(keys, 500):
            if len(pk_columns) == 1:
                target = f"{self.table}.{self.quote(pk_columns[0])}"
                values = ", ".join(["%s"] * len(chunk))
                params = [key[0] for key in chunk]
            else:
                target = "(" + ", ".join(f"{self.table}.{self.quote(c)}" for c in pk_columns) + ")"
                one = "(" + ", ".join(["%s"] * len(pk_columns)) + ")"
                values = ", ".join([one] * len(chunk))
                params = [value for key in chunk for value in key]
            sql = f"SELECT {', '.join(self.quoted)} FROM {self.table} WHERE {target} IN ({values})"
            rows += fetch(self.connection, sql, params)
        return self.as_dicts(rows)

    def as_dicts(self, rows) -> list[dict]:
        """Rows of the condition columns as ``{column: value}``."""
        return [dict(zip(self.columns, row, strict=True)) for row in rows]


def _chunks(items: list, size: int):
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _update_where(compiler, sql: str, params) -> tuple[str, tuple] | None:
    """The WHERE clause at the end of the compiled UPDATE ``sql`` (None: no WHERE, or an
    unexpected shape)."""
    try:
        where, where_params = compiler.compile(compiler.query.where)
    except FullResultSet:
        return None  # every row of the table
    tail = f" WHERE {where}"
    params = tuple(params)
    where_params = tuple(where_params)
    if not sql.endswith(tail) or len(where_params) > len(params):
        return None
    if where_params and params[len(params) - len(where_params) :] != where_params:
        return None
    return where, where_params


# -- UPDATE -----------------------------------------------------------------------------


def update(original, compiler, result_type):
    """``SQLUpdateCompiler.execute_sql``: run the UPDATE, invalidate old and new values."""
    if not _first_time(compiler):
        return original(compiler, result_type)
    connection = compiler.connection
    try:
        sql, params = compiler.as_sql()  # once: Django's setup may run a SELECT of its own
    except EmptyResultSet:
        return original(compiler, result_type)  # nothing to update; Django says so itself

    def run(as_sql=(sql, params)):
        return _run_compiled(original, compiler, (result_type,), as_sql)

    if not sql:
        return run()  # no field of this table changes (related updates run their own)
    table = compiler.query.get_meta().db_table
    try:
        info = _rows_known(compiler)
        found = _update_where(compiler, sql, params) if info is not None else None
        shape = _Shape(compiler, info, *found) if found is not None else None
    except Exception:
        report_fault("reading the shape of an UPDATE")
        shape = None
    if shape is None:
        result = run()
        _invalidate(connection, _whole(table), {table})
        return result
    if (
        connection.vendor == "postgresql"
        and result_type in (ROW_COUNT, NO_RESULTS)
        and not _statements_watched(connection)
    ):
        return _update_in_one_statement(compiler, shape, sql, params, result_type)
    return _write_beside(compiler, shape, run, is_update=True)


def _statements_watched(connection) -> bool:
    """True while Django captures queries (``assertNumQueries``, ``CaptureQueriesContext``).

    The project's own statements then run with the text it wrote (tests compare it): a
    write's old and new values are read beside it instead of from the write itself.
    """
    return connection.force_debug_cursor


def _run_compiled(original, compiler, args, as_sql):
    """Run ``original`` with the statement already compiled (never compiled twice)."""
    compiler.as_sql = lambda *a, **k: as_sql
    try:
        return original(compiler, *args)
    finally:
        del compiler.as_sql


def _update_in_one_statement(compiler, shape: _Shape, sql: str, params, result_type):
    """PostgreSQL: the UPDATE reads its rows' old values and returns old and new at once."""
    connection = compiler.connection
    quote = shape.quote
    old = quote(_OLD)
    aliases = [quote(f"strata_{i}") for i in range(len(shape.columns))]
    picked = ", ".join(
        f"{column} AS {alias}" for column, alias in zip(shape.quoted, aliases, strict=True)
    )
    sub_select = (
        f"SELECT {picked} FROM {shape.table} WHERE {shape.where} {connection.ops.for_update_sql()}"
    )
    index = {column: alias for column, alias in zip(shape.columns, aliases, strict=True)}
    joined = " AND ".join(
        f"{shape.table}.{quote(c)} = {old}.{index[c]}" for c in shape.info.pk_columns
    )
    returning = ", ".join([f"{old}.{alias}" for alias in aliases] + shape.quoted)
    set_clause = sql[: len(sql) - len(f" WHERE {shape.where}")]
    statement = f"{set_clause} FROM ({sub_select}) AS {old} WHERE {joined} RETURNING {returning}"
    with connection.cursor() as cursor:  # the project's own statement, logged once
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    count = len(shape.columns)
    limit = strata_settings().write_row_limit
    if len(rows) > limit:
        before = after = None
    else:
        before = shape.as_dicts(row[:count] for row in rows)
        after = shape.as_dicts(row[count:] for row in rows)
    _invalidate(connection, _row_tags_of(shape.info, before, after), {shape.info.table})
    # What SQLUpdateCompiler.execute_sql does after its own statement (Django 5.2, 6.1).
    row_count = len(rows) if result_type == ROW_COUNT else None
    is_empty = row_count is None
    row_count = row_count or 0
    for query in compiler.query.get_related_updates():
        aux_row_count = query.get_compiler(compiler.using).execute_sql(result_type)
        if is_empty and aux_row_count:
            row_count = aux_row_count
            is_empty = False
    return row_count


def update_returning(original, compiler, returning_fields):
    """Django 6.1's ``SQLUpdateCompiler.execute_returning_sql`` (every ``save()``)."""
    if not returning_fields or not compiler.connection.features.can_return_rows_from_update:
        # Django runs the plain UPDATE itself (execute_sql), through update() above.
        return original(compiler, returning_fields)
    if not _first_time(compiler):
        return original(compiler, returning_fields)
    connection = compiler.connection
    table = compiler.query.get_meta().db_table
    try:
        shape = _shape_of_a_copy(compiler)
    except Exception:
        report_fault("reading the shape of an UPDATE ... RETURNING")
        shape = None
    if shape is None:
        result = original(compiler, returning_fields)
        _invalidate(connection, _whole(table), {table})
        return result
    return _write_beside(
        compiler, shape, lambda: original(compiler, returning_fields), is_update=True
    )


def _shape_of_a_copy(compiler) -> _Shape | None:
    """The UPDATE's shape, compiled from a copy of its query (the original stays as it is)."""
    info = _rows_known(compiler)
    if info is None or compiler.query.related_updates:
        return None
    copy = compiler.query.clone().get_compiler(connection=compiler.connection)
    try:
        sql, params = copy.as_sql()
    except Exception:
        return None  # the project's own error: Django raises it again, unchanged
    found = _update_where(copy, sql, params) if sql else None
    return _Shape(copy, info, *found) if found is not None else None


# -- DELETE -----------------------------------------------------------------------------


def delete(original, compiler, args):
    """``SQLDeleteCompiler.execute_sql``: run the DELETE, invalidate the removed rows."""
    if not _first_time(compiler):
        return original(compiler, *args)
    connection = compiler.connection
    model = compiler.query.model
    if model is None:
        return original(compiler, *args)
    table = model._meta.db_table
    cascades = _cascades(model)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return original(compiler, *args)

    def run():
        return _run_compiled(original, compiler, args, (sql, params))

    try:
        info = _rows_known(compiler)
        prefix = f"DELETE FROM {connection.ops.quote_name(table)} WHERE "
        shape = (
            _Shape(compiler, info, sql[len(prefix) :], params)
            if info is not None and sql.startswith(prefix)
            else None
        )
    except Exception:
        report_fault("reading the shape of a DELETE")
        shape = None
    if shape is None:
        result = run()
        _invalidate(connection, _whole(table, *cascades), {table, *cascades})
        return result
    if (
        args[:1] == (ROW_COUNT,)
        and _deletes_returning(connection)
        and not _statements_watched(connection)
    ):
        returning = ", ".join(shape.quoted)
        with connection.cursor() as cursor:  # the project's own statement, logged once
            cursor.execute(f"{sql} RETURNING {returning}", params)
            rows = cursor.fetchall()
        limit = strata_settings().write_row_limit
        before = shape.as_dicts(rows) if len(rows) <= limit else None
        tags = _row_tags_of(shape.info, before, []) | _whole(*cascades)
        _invalidate(connection, tags, {table, *cascades})
        return len(rows)
    result = _write_beside(compiler, shape, run, is_update=False)
    if cascades:
        _invalidate(connection, _whole(*cascades), set(cascades))
    return result


def _deletes_returning(connection) -> bool:
    """Can this DELETE report the rows it removed itself (one statement)?"""
    return (
        connection.vendor
        in (
            "postgresql",
            "sqlite",
        )
        and connection.features.can_return_columns_from_insert
    )  # RETURNING (SQLite 3.35+)


# -- both, with statements of our own ---------------------------------------------------


class _OwnStatementFailed(Exception):
    """A statement Strata added failed (the project's own never raises this)."""


def _write_beside(compiler, shape: _Shape, run, *, is_update: bool):
    """Read old values, write, read new values, with the rows held in between.

    If a statement of ours fails, the write runs as it would without Strata and the
    whole table is invalidated.
    """
    connection = compiler.connection
    if _transaction_broken(connection):
        return run()  # the project's statement raises what it would without Strata
    info = shape.info
    limit = strata_settings().write_row_limit
    changes_keys = is_update and any(
        field.column in info.pk_columns for field, _, _ in compiler.query.values
    )
    try:
        with rows_held(connection, info.table, info.pk_columns[0]):
            before = _ours(
                connection,
                lambda: fetch(connection, shape.old_values_sql(limit), shape.where_params),
            )
            before = shape.as_dicts(before) if len(before) <= limit else None
            result = run()
            after: list[dict] | None = []
            if is_update:
                after = None
                if before and not changes_keys:
                    after = _ours(connection, lambda: shape.new_values(before))
                elif before == []:
                    after = []
    except _OwnStatementFailed:
        report_fault("reading a write's old or new values")
        result = run()
        before = after = None
    _invalidate(connection, _row_tags_of(info, before, after), {info.table})
    return result


def _transaction_broken(connection) -> bool:
    """True when the open transaction can run no statement (it must be rolled back)."""
    if connection.in_atomic_block and connection.needs_rollback:
        return True
    if connection.vendor == "postgresql" and connection.connection is not None:
        status = getattr(getattr(connection.connection, "info", None), "transaction_status", None)
        return status is not None and int(status) == _PQTRANS_INERROR
    return False


_PQTRANS_INERROR = 3
"""libpq's status of a transaction that failed (psycopg 2 and 3 report it alike)."""


def _ours(connection, read):
    """Run one of our reads; on PostgreSQL inside a transaction, inside a savepoint of
    its own, so that a failure never aborts the project's transaction."""
    guard = (
        connection.vendor == "postgresql"
        and transaction_open(connection)
        and connection.connection is not None
    )
    name = f"strata_{id(read):x}"
    try:
        if guard:
            execute(connection, f"SAVEPOINT {name}")
        try:
            rows = read()
        except DatabaseError:
            if guard:
                with contextlib.suppress(DatabaseError):
                    execute(connection, f"ROLLBACK TO SAVEPOINT {name}")
            raise
        if guard:
            execute(connection, f"RELEASE SAVEPOINT {name}")
        return rows
    except Exception as exc:
        raise _OwnStatementFailed(str(exc)) from exc


# -- INSERT -----------------------------------------------------------------------------


def insert(original, compiler, returning_fields=None):
    """``SQLInsertCompiler.execute_sql``: insert, then invalidate the new rows' conditions."""
    query = compiler.query
    model = query.model
    connection = compiler.connection
    table = model._meta.db_table
    try:
        info = _rows_known(compiler)
        want_pk = (
            info is not None
            and returning_fields is None
            and not _statements_watched(connection)
            and len(info.pk_columns) == 1
            and not query.on_conflict
            and connection.features.can_return_columns_from_insert
            and (len(query.objs) == 1 or connection.features.can_return_rows_from_bulk_insert)
        )
    except Exception:
        report_fault("reading the shape of an INSERT")
        info, want_pk = None, False
    token = in_orm.set(True)
    try:
        # Ask for the primary keys if the caller did not: they name the new rows.
        rows = original(compiler, [model._meta.pk] if want_pk else returning_fields)
    finally:
        in_orm.reset(token)
    try:
        tags = _insert_tags(compiler, info, returning_fields, want_pk, rows)
    except Exception:
        report_fault("naming the rows of an INSERT")
        tags = _whole(table)
    _invalidate(connection, tags, {table})
    return [] if want_pk else rows


def _insert_tags(compiler, info, returning_fields, want_pk, rows) -> set[str]:
    query = compiler.query
    table = query.model._meta.db_table
    if info is None or query.on_conflict == OnConflict.UPDATE:
        return _whole(table)  # existing rows changed, old values unknown
    if len(query.objs) > strata_settings().write_row_limit:
        return _whole(table)  # as for updates and deletes: the table, not each row
    tags = {table_tag(table)}
    written = {f.column for f in query.fields}
    if not written.issuperset(set(info.condition_columns) - set(info.pk_columns)):
        tags.add(bulk_tag(table))  # a condition column the database fills (db_default...)
    # Plain inserts, and ON CONFLICT DO NOTHING: the rows that exist afterwards carry
    # exactly these values (a conflicting one was left as it was).
    returned = returning_fields if returning_fields else ([query.model._meta.pk] if want_pk else [])
    values = []
    for index, obj in enumerate(query.objs):
        row = {}
        for f in query.fields:
            value = getattr(obj, f.attname, None)
            if hasattr(value, "resolve_expression"):
                tags.add(bulk_tag(table))  # an expression: the database decides
                continue
            row[f.column] = value
        if index < len(rows or []):
            row.update({f.column: v for f, v in zip(returned, rows[index], strict=False)})
        if any(row.get(c) is None for c in info.pk_columns):
            tags.add(new_rows_tag(table))  # a new row whose key we cannot name
        values.append(row)
    return tags | row_tags(table, values)


# -- raw SQL ----------------------------------------------------------------------------


def raw(cursor, sql) -> None:
    """After ``cursor.execute(sql)`` outside the ORM: invalidate what the SQL may write."""
    if in_orm.get() or not isinstance(sql, str):
        return
    alias = cursor.db.alias
    if alias not in connections.settings:
        return  # Django's own temporary connections (creating the test database...)
    try:
        tables = raw_write_tables(sql)
        if tables is not None and tables and tables <= _cache_tables():
            return  # a DatabaseCache's own statement (Strata's versions, or the project's)
        if tables == frozenset():
            if _LOCKS.search(sql):
                note_row_locks(alias)
            if recording_active() and _RAW_READ.match(sql) and not _reads_cache_table(sql):
                taint("a raw SQL read (its tags are unknown)")
            return
        if tables is None:
            invalidate_after_commit(alias, {ALL}, {ALL})
        else:
            known = known_tables()
            named = {t for t in tables if t in known} or set(tables)
            for table in list(named):
                if (info := table_info(table)) is not None:
                    named |= db_cascade_tables(info.model)  # DELETE/TRUNCATE reach further
            tags = {table_tag(t) for t in named} | {bulk_tag(t) for t in named}
            invalidate_after_commit(alias, tags, named)
    except Exception:
        report_fault("reading raw SQL")
        invalidate_after_commit(alias, {ALL}, {ALL})
    stats["invalidate"] += 1


_RAW_READ = re.compile(r"\s*(\(\s*)*(SELECT|WITH|VALUES|TABLE)\b", re.IGNORECASE)
_LOCKS = re.compile(r"\bFOR\s+(NO\s+KEY\s+)?(UPDATE|SHARE|KEY\s+SHARE)\b|^\s*LOCK\b", re.I)


def _cache_tables() -> frozenset[str]:
    """Tables of the project's ``DatabaseCache`` backends (not the application's data)."""
    from django.conf import settings

    tables = set()
    for config in getattr(settings, "CACHES", {}).values():
        if config.get("BACKEND", "").endswith("db.DatabaseCache") and config.get("LOCATION"):
            tables.add(config["LOCATION"])
    return frozenset(tables)


def _reads_cache_table(sql: str) -> bool:
    tables = _cache_tables()
    return bool(tables) and any(
        re.search(rf"\bFROM\s+[\"`\[]?{re.escape(t)}[\"`\]]?", sql, re.I) for t in tables
    )
