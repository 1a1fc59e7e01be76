"""The dangerous part: Strata's hooks into Django's SQL compilers and cursor.

Reads: ``SQLCompiler.execute_sql`` answers SELECTs from the cache when the versions of
their tags are current, and stores what it reads otherwise.

Writes, every path: ``SQLInsertCompiler`` (save, create, bulk_create, m2m add,
loaddata), ``SQLUpdateCompiler`` (save, QuerySet.update, bulk_update, on_delete=SET_NULL),
``SQLDeleteCompiler`` (delete, cascades, fast deletes, m2m remove/clear), and
``CursorWrapper.execute``/``executemany`` for raw SQL. Migrations invalidate everything.
Each write changes versions after commit (``strata.tags.invalidation``).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import pickle
import re
from collections import OrderedDict
from contextlib import nullcontext, suppress
from functools import wraps

from django.core.exceptions import EmptyResultSet
from django.db import connections, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models.constants import OnConflict
from django.db.models.signals import post_migrate
from django.db.models.sql.compiler import (
    MULTI,
    ROW_COUNT,
    SINGLE,
    SQLCompiler,
    SQLDeleteCompiler,
    SQLInsertCompiler,
    SQLUpdateCompiler,
)
from django.db.models.sql.query import Query

from ..conf import strata_settings
from ..replicas.positions import replica_behind
from ..tags.invalidation import dirty_tables, invalidate_after_commit
from ..tags.naming import ALL, bulk_tag, new_rows_tag, table_tag
from ..tags.recorder import record, recording_active, taint
from ..tags.versions import CacheUnavailable, version_store
from .analysis import (
    is_nondeterministic,
    late_row_tags,
    raw_write_tables,
    read_tags,
    row_pinned_tables,
    row_tags,
)
from .control import caching_disabled, caching_is_disabled, in_orm
from .schema import db_cascade_tables, known_tables, table_info, tables_in_sql
from .stats import stats

__all__ = ["install", "is_installed"]

log = logging.getLogger("strata.querycache")

RESULT_PREFIX = "strata:q:"
_installed = False


def is_installed() -> bool:
    """True once the hooks are in place."""
    return _installed


# -- reads ------------------------------------------------------------------------------


def _connection_identity(connection) -> str:
    s = connection.settings_dict
    return f"{connection.alias}|{connection.vendor}|{s.get('HOST')}|{s.get('PORT')}|{s.get('NAME')}"


def _result_key(connection, sql: str, params, result_type: str) -> str:
    text = f"{_connection_identity(connection)}\n{result_type}\n{sql}\n{params!r}"
    return RESULT_PREFIX + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


_MEMO_SIZE = 4096
_memo: OrderedDict = OrderedDict()


class _ReadShape:
    """What is known about one (SQL, parameters): its tags, key, and late-pinned tables."""

    __slots__ = ("tags", "key", "late", "stored")

    def __init__(self, tags: frozenset[str], key: str, late: tuple[tuple[str, int], ...]):
        self.tags = tags
        self.key = key
        self.late = late
        self.stored: frozenset[str] = frozenset()
        """The tags of the artifact last stored or found under ``key`` (row tags of
        late-pinned tables instead of their table tags): read with it in one trip."""


def _shape_of(connection, query, compiler, sql: str, params, result_type: str) -> _ReadShape:
    """The read's tags and cache key, remembered per (SQL, parameters).

    Equal SQL and parameters mean an equal query: the same tables, the same pinned
    values. Working them out again for every hit would cost more than the hit.
    """
    identity = _connection_identity(connection)
    try:
        memo_key = (identity, sql, params, result_type)
        found = _memo.get(memo_key)
    except TypeError:  # unhashable parameters (lists for an array column...)
        memo_key, found = None, None
    if found is not None:
        with suppress(KeyError):  # another thread may have just evicted it
            _memo.move_to_end(memo_key)
        return found
    simple = not query.combinator and sql.upper().count("SELECT") == 1
    found = _ReadShape(
        read_tags(query, sql, simple=simple),
        _result_key(connection, sql, params, result_type),
        row_pinned_tables(query, compiler, sql) if simple else (),
    )
    if memo_key is not None:
        _memo[memo_key] = found
        if len(_memo) > _MEMO_SIZE:
            with suppress(KeyError):
                _memo.popitem(last=False)
    return found


def forget_memo() -> None:
    """Drop remembered tags and keys (after the schema or settings change)."""
    _memo.clear()


def _may_cache_in_transaction(connection) -> bool:
    """Inside a transaction, only READ COMMITTED sees other transactions' commits."""
    if not connection.in_atomic_block:
        return True
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import IsolationLevel

        level = getattr(connection, "isolation_level", None)
        return level is None or level == IsolationLevel.READ_COMMITTED
    return False


def _bypass(reason: str, original, compiler, *args):
    """Read from the database; an artifact being built from this read must not be stored."""
    stats[f"bypass:{reason}"] += 1
    if recording_active():
        taint(f"a read bypassed the query cache ({reason})")
    return original(compiler, *args)


def _read(original, compiler, result_type, chunked_fetch, chunk_size):
    args = (result_type, chunked_fetch, chunk_size)
    conf = strata_settings()
    query_conf = conf.query_cache
    query = compiler.query
    if result_type not in (MULTI, SINGLE):
        return original(compiler, *args)
    cache_results = query_conf.enabled
    if not cache_results and not recording_active():
        return original(compiler, *args)
    if chunked_fetch:
        return _bypass("iterator()", original, compiler, *args)
    if query.select_for_update:
        return _bypass("select_for_update", original, compiler, *args)
    if caching_is_disabled():
        return _bypass("caching disabled", original, compiler, *args)
    connection = compiler.connection
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return original(compiler, *args)
    if not sql:
        return original(compiler, *args)

    tables = tables_in_sql(sql)
    if tables & query_conf.exclude_tables or any(
        (info := table_info(t)) is not None and info.app_label in query_conf.exclude_apps
        for t in tables
    ):
        return _bypass("excluded", original, compiler, *args)
    dirty = dirty_tables(connection.alias)
    if dirty and (ALL in dirty or tables & dirty):
        return _bypass("written in this transaction", original, compiler, *args)
    if not _may_cache_in_transaction(connection):
        return _bypass("transaction isolation", original, compiler, *args)
    if not query_conf.cache_nondeterministic and is_nondeterministic(sql):
        return _bypass("nondeterministic", original, compiler, *args)

    shape = _shape_of(connection, query, compiler, sql, params, result_type)
    tags, key = shape.tags, shape.key
    store = version_store(conf.cache_alias)
    try:
        versions, extras = store.get_with(tags | shape.stored, [key] if cache_results else [])
        cached = extras.get(key)
        if cached is not None:
            unknown = [tag for tag in cached[0] if tag not in versions]
            if unknown:
                versions.update(store.get_with(unknown)[0])
    except CacheUnavailable:
        stats["error"] += 1
        return _bypass("cache unavailable", original, compiler, *args)
    if cached is not None and all(versions[tag] == v for tag, v in cached[0].items()):
        stats["hit"] += 1
        shape.stored = frozenset(cached[0])
        record(cached[0])
        return cached[1]
    snapshot, missing = store.provisional({tag: versions[tag] for tag in tags})
    if not shape.late:
        record(snapshot, missing)
    if cache_results:
        stats["miss"] += 1
    if conf.replicas and connection.alias in conf.replicas:
        # The replica rule (DESIGN.md): what a replica that has not replayed the writes
        # behind this snapshot returns is served, never stored.
        behind = replica_behind(connection)
        if behind is not None:
            stats["replica-behind"] += 1
            taint(behind)
            cache_results = False
    # Run the query with the SQL already compiled, instead of compiling it twice.
    compiler.as_sql = lambda *a, **k: (sql, params)
    try:
        result = original(compiler, *args)
    finally:
        del compiler.as_sql
    if shape.late:
        result_rows = _rows_of(result, result_type)
        snapshot, missing, current = _pin_rows_late(store, shape, snapshot, missing, result_rows)
        record(snapshot, missing)
        if not current:
            return result  # a write to a late-pinned table raced this read: do not store
    if not cache_results:
        return result  # only the tags were wanted (a page or fragment is being built)
    rows = 0 if result is None else (1 if result_type == SINGLE else sum(map(len, result)))
    if rows <= query_conf.max_rows:
        try:
            store.store(key, (snapshot, result), query_conf.timeout, snapshot, missing)
            shape.stored = frozenset(snapshot)
            stats["store"] += 1
        except CacheUnavailable:
            stats["error"] += 1
        except (TypeError, AttributeError, pickle.PicklingError) as exc:  # unpicklable rows
            stats["error"] += 1
            log.warning("strata: could not store a query result (%s)", exc)
    return result


def _rows_of(result, result_type):
    if result is None:
        return []
    if result_type == SINGLE:
        return [result]
    return [row for chunk in result for row in chunk]


def _pin_rows_late(store, shape: _ReadShape, snapshot: dict, missing: list, rows: list):
    """Swap late-pinned tables' table tags for the tags of the rows the read returned.

    Returns ``(snapshot, provisional tags, still current)``. The row tags' versions are
    taken after the read, so the swap is accepted only if each table's own version did
    not change since the snapshot before it: no write to the table committed in between
    (a write changes the table tag after it commits; one that committed earlier but
    changes versions later also changes the row tags, which then invalidate us).
    """
    late_tags: set[str] = set()
    tables = []
    for table, index in shape.late:
        tags = late_row_tags(table, (row[index] for row in rows))
        if tags is None:
            continue  # too many rows: keep the table tag
        late_tags |= tags
        tables.append(table)
    if not tables:
        return snapshot, missing, True
    try:
        now, _ = store.get_with(late_tags | set(tables))
    except CacheUnavailable:
        return snapshot, missing, False
    for table in tables:
        if now[table] != snapshot[table] and not (now[table] is None and table in missing):
            return snapshot, missing, False
    late_snapshot, late_missing = store.provisional({tag: now[tag] for tag in late_tags})
    pinned = {tag: v for tag, v in snapshot.items() if tag not in tables}
    pinned.update(late_snapshot)
    kept_missing = [tag for tag in missing if tag not in tables]
    return pinned, kept_missing + late_missing, True


# -- writes -----------------------------------------------------------------------------


def _locks_rows(connection) -> bool:
    """Can this backend read the rows a write will touch, locked until commit?"""
    if connection.features.has_select_for_update:
        return True
    return connection.vendor == "sqlite" and getattr(connection, "transaction_mode", None) in (
        "IMMEDIATE",
        "EXCLUSIVE",
    )


def _select_rows(query: Query, alias: str, model, columns, limit: int | None, lock: bool):
    """Rows (condition columns only) that ``query``'s WHERE matches, or None if too many."""
    fields = [f for f in model._meta.concrete_fields if f.column in columns]
    select = query.chain(klass=Query)
    select.select_related = False
    select.clear_ordering(force=True)
    base = select.get_initial_alias()
    select.default_cols = False
    select.set_select([f.get_col(base) for f in fields])
    select.annotations = {}
    select.annotation_select_mask = None
    if lock:
        select.select_for_update = True
        if (
            len(select.alias_map) > 1
            and select.get_compiler(alias).connection.features.has_select_for_update_of
        ):
            select.select_for_update_of = ("self",)
    if limit is not None:
        select.set_limits(high=limit + 1)
    with caching_disabled():
        try:
            chunks = select.get_compiler(alias).execute_sql(MULTI)
        except EmptyResultSet:
            return []
    rows = [
        dict(zip([f.column for f in fields], row, strict=False))
        for chunk in chunks
        for row in chunk
    ]
    if limit is not None and len(rows) > limit:
        return None
    return rows


def _write_tags(table: str, before, after) -> set[str]:
    tags = {table_tag(table)}
    if before is None:
        tags.add(bulk_tag(table))
        return tags
    tags |= row_tags(table, before)
    tags |= row_tags(table, after or [])
    return tags


_in_write: contextvars.ContextVar[bool] = contextvars.ContextVar("strata_in_write", default=False)


def _update_or_delete(original, compiler, args, *, is_update: bool):
    """Run an UPDATE/DELETE and invalidate the old and new values of the rows it touched."""
    query = compiler.query
    model = query.model
    if model is None or _in_write.get():
        # Django 6.1's execute_returning_sql calls execute_sql: one write, handled once.
        return original(compiler, *args)
    handling = _in_write.set(True)
    try:
        return _update_or_delete_once(original, compiler, args, is_update=is_update)
    finally:
        _in_write.reset(handling)


def _update_or_delete_once(original, compiler, args, *, is_update: bool):
    query = compiler.query
    model = query.model
    connection = compiler.connection
    table = model._meta.db_table
    info = table_info(table)
    cascades = set() if is_update else set(db_cascade_tables(model))
    token = in_orm.set(True)
    try:
        if info is None or query.where is None:
            result, before, after = original(compiler, *args), None, None
        elif not is_update and _deletes_returning(connection, args):
            result, before, after = *_delete_returning(compiler, info, original, args), None
        else:
            result, before, after = _write_with_old_values(
                original, compiler, args, info, is_update
            )
        tags = _write_tags(table, before, after)
        for child in cascades:
            tags |= {table_tag(child), bulk_tag(child)}
        invalidate_after_commit(connection.alias, tags, {table, *cascades})
        stats["invalidate"] += 1
        return result
    finally:
        in_orm.reset(token)


def _write_with_old_values(original, compiler, args, info, is_update: bool):
    """Read the rows' condition values (locked where possible), write, read the new ones.

    Returns the compiler's result, the old values (None: too many rows to list) and the
    new values of an UPDATE's rows.
    """
    query = compiler.query
    model = query.model
    alias = compiler.connection.alias
    limit = strata_settings().write_row_limit
    lock = _locks_rows(compiler.connection)
    with transaction.atomic(using=alias, savepoint=False) if lock else nullcontext():
        before = _select_rows(query, alias, model, info.condition_columns, limit, lock)
        result = original(compiler, *args)
        after = None
        if is_update and before:
            pks = [row[info.pk_column] for row in before]
            after = _select_rows(
                model._base_manager.using(alias).filter(pk__in=pks).query,
                alias,
                model,
                info.condition_columns,
                None,
                False,
            )
    return result, before, after


def _deletes_returning(connection, args) -> bool:
    """Can this DELETE report the rows it removed itself (one statement, no lock)?"""
    return (
        args[:1] == (ROW_COUNT,)
        and connection.vendor in ("postgresql", "sqlite")
        and connection.features.can_return_columns_from_insert  # RETURNING (SQLite 3.35+)
    )


def _delete_returning(compiler, info, original, args):
    """``DELETE ... RETURNING`` the condition columns: the old values, exactly, at once."""
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return original(compiler, *args), []
    quote = compiler.connection.ops.quote_name
    returning = ", ".join(quote(column) for column in info.condition_columns)
    with compiler.connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {returning}", params)
        rows = cursor.fetchall()
    removed = [dict(zip(info.condition_columns, row, strict=True)) for row in rows]
    limit = strata_settings().write_row_limit
    return len(rows), (removed if len(removed) <= limit else None)


def _insert(original, compiler, returning_fields=None):
    query = compiler.query
    model = query.model
    connection = compiler.connection
    table = model._meta.db_table
    info = table_info(table)
    token = in_orm.set(True)
    try:
        # Ask for the primary keys if the caller did not: they name the new rows.
        want_pk = (
            returning_fields is None
            and info is not None
            and not query.on_conflict
            and connection.features.can_return_columns_from_insert
            and (len(query.objs) == 1 or connection.features.can_return_rows_from_bulk_insert)
        )
        rows = original(compiler, [model._meta.pk] if want_pk else returning_fields)
    finally:
        in_orm.reset(token)
    tags = {table_tag(table)}
    if info is None or query.on_conflict == OnConflict.UPDATE:
        tags.add(bulk_tag(table))  # existing rows changed, old values unknown
    else:
        # Plain inserts, and ON CONFLICT DO NOTHING: the rows that exist afterwards
        # carry exactly these values (a conflicting one was left as it was).
        returned = returning_fields if returning_fields else ([model._meta.pk] if want_pk else [])
        values = []
        for index, obj in enumerate(query.objs):
            row = {f.column: getattr(obj, f.attname, None) for f in query.fields}
            if index < len(rows or []):
                row.update({f.column: v for f, v in zip(returned, rows[index], strict=False)})
            if row.get(info.pk_column) is None:
                tags.add(new_rows_tag(table))  # a new row whose key we cannot name
            values.append(row)
        tags |= row_tags(table, values)
    invalidate_after_commit(connection.alias, tags, {table})
    stats["invalidate"] += 1
    return [] if want_pk else rows


# -- raw SQL ----------------------------------------------------------------------------


_RAW_READ = re.compile(r"\s*(\(\s*)*(SELECT|WITH|VALUES|TABLE)\b", re.IGNORECASE)


def _raw(cursor: CursorWrapper, sql) -> None:
    if in_orm.get() or not isinstance(sql, str):
        return
    alias = cursor.db.alias
    if alias not in connections.settings:
        return  # Django's own temporary connections (creating the test database...)
    tables = raw_write_tables(sql)
    if tables == frozenset():
        if recording_active() and _RAW_READ.match(sql):
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
    stats["invalidate"] += 1


# -- installation -----------------------------------------------------------------------


def install() -> None:
    """Put the hooks in place (once per process; called from ``StrataConfig.ready``)."""
    global _installed
    if _installed:
        return
    select_original = SQLCompiler.execute_sql
    insert_original = SQLInsertCompiler.execute_sql
    update_original = SQLUpdateCompiler.execute_sql

    @wraps(select_original)
    def execute_sql(self, result_type=MULTI, chunked_fetch=False, chunk_size=100):
        if isinstance(self, SQLDeleteCompiler):
            return _update_or_delete(
                select_original, self, (result_type, chunked_fetch, chunk_size), is_update=False
            )
        if isinstance(self, SQLUpdateCompiler | SQLInsertCompiler):
            return select_original(self, result_type, chunked_fetch, chunk_size)
        token = in_orm.set(True)
        try:
            return _read(select_original, self, result_type, chunked_fetch, chunk_size)
        finally:
            in_orm.reset(token)

    @wraps(update_original)
    def update_execute_sql(self, result_type):
        return _update_or_delete(update_original, self, (result_type,), is_update=True)

    # Django 6.1: UPDATE ... RETURNING for save() with expressions or generated fields.
    returning_original = getattr(SQLUpdateCompiler, "execute_returning_sql", None)
    if returning_original is not None:

        @wraps(returning_original)
        def update_execute_returning_sql(self, returning_fields):
            return _update_or_delete(returning_original, self, (returning_fields,), is_update=True)

        SQLUpdateCompiler.execute_returning_sql = update_execute_returning_sql

    @wraps(insert_original)
    def insert_execute_sql(self, returning_fields=None):
        return _insert(insert_original, self, returning_fields)

    execute_original = CursorWrapper.execute
    executemany_original = CursorWrapper.executemany

    @wraps(execute_original)
    def execute(self, sql, params=None):
        result = execute_original(self, sql, params)
        _raw(self, sql)
        return result

    @wraps(executemany_original)
    def executemany(self, sql, param_list):
        result = executemany_original(self, sql, param_list)
        _raw(self, sql)
        return result

    SQLCompiler.execute_sql = execute_sql
    SQLUpdateCompiler.execute_sql = update_execute_sql
    SQLInsertCompiler.execute_sql = insert_execute_sql
    CursorWrapper.execute = execute
    CursorWrapper.executemany = executemany
    post_migrate.connect(_after_migrate, dispatch_uid="strata-invalidate-after-migrate")
    _installed = True


def _after_migrate(sender, using="default", **kwargs) -> None:
    invalidate_after_commit(using, {ALL})
