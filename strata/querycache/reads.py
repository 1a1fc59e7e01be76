"""Reads: answer a SELECT from the cache while its tags' versions are current.

The read's tags come from the compiled query (:mod:`strata.querycache.analysis`), its key
from the connection's identity, the SQL and the parameters. A hit is one round trip (the
result and its versions in one multi-get); a miss snapshots the versions first, reads the
database, and stores the rows with that snapshot (``docs/design.md``, "The consistency
protocol"). Reads that cannot be trusted for others bypass the cache: inside a
transaction that wrote their tables, under snapshot isolation, ``SELECT ... FOR UPDATE``,
server-side cursors, nondeterministic SQL. While Django captures queries
(``assertNumQueries``, ``CaptureQueriesContext``), every read goes to the database, as it
would without Strata, and its result is still stored. A fault in this module never
reaches the application: the query runs against the database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from collections import OrderedDict
from contextlib import suppress

from django.db.models.sql.constants import MULTI, SINGLE

from ..conf import strata_settings
from ..debug import trace
from ..replicas.positions import replica_behind
from ..signals import schema_changed
from ..tags.invalidation import dirty_tables, note_row_locks, transaction_open
from ..tags.keyspace import RESULT_PREFIX
from ..tags.naming import ALL
from ..tags.recorder import record, recording_active, taint
from ..tags.stores import version_store
from ..tags.versions import CacheUnavailable
from .analysis import (
    is_nondeterministic,
    late_row_tags,
    query_tables,
    read_tags,
    row_pinned_tables,
)
from .control import caching_is_disabled
from .faults import report_fault
from .schema import known_tables, table_info, tables_in_sql
from .stats import stats

log = logging.getLogger("strata.querycache")

__all__ = ["read", "forget_memo", "RESULT_PREFIX"]


def _connection_identity(connection) -> str:
    """Which database a result came from: equal identities must mean the same data."""
    s = connection.settings_dict
    identity = (
        f"{connection.alias}|{connection.vendor}|{s.get('HOST')}|{s.get('PORT')}|{s.get('NAME')}"
    )
    schema = getattr(connection, "schema_name", None)  # django-tenants: one schema a tenant
    if schema is not None:
        identity += f"|schema={schema}"
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        # An in-memory database lives in one process: forked workers of a parallel test
        # run each hold their own under the same NAME.
        identity += f"|pid={os.getpid()}"
    return identity


def _result_key(connection, sql: str, params, result_type: str) -> str:
    text = f"{_connection_identity(connection)}\n{result_type}\n{sql}\n{params!r}"
    return RESULT_PREFIX + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


_MEMO_SIZE = 4096
_memo: OrderedDict = OrderedDict()


class _ReadShape:
    """What is known about one (SQL, parameters): its tags, key, and late-pinned tables."""

    __slots__ = ("tags", "key", "late", "stored", "unregistered")

    def __init__(
        self,
        tags: frozenset[str],
        key: str,
        late: tuple[tuple[str, int], ...],
        unregistered: frozenset[str] = frozenset(),
    ):
        self.tags = tags
        self.key = key
        self.late = late
        self.unregistered = unregistered
        """Tables the read names that no registered model owns: never cached."""
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
        query_tables(query) - known_tables(),
    )
    if memo_key is not None:
        _memo[memo_key] = found
        if len(_memo) > _MEMO_SIZE:
            with suppress(KeyError):
                _memo.popitem(last=False)
    return found


def forget_memo(**kwargs) -> None:
    """Drop remembered tags and keys (a receiver of :data:`strata.signals.schema_changed`)."""
    _memo.clear()


schema_changed.connect(forget_memo, dispatch_uid="strata-forget-read-memo")


def _may_cache_in_transaction(connection) -> bool:
    """Inside a transaction, only READ COMMITTED sees other transactions' commits."""
    if not transaction_open(connection):
        return True
    if connection.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import IsolationLevel

        level = getattr(connection, "isolation_level", None)
        return level is None or level == IsolationLevel.READ_COMMITTED
    return False


def _bypass(reason: str, original, compiler, *args):
    """Read from the database; an artifact being built from this read must not be stored."""
    stats[f"bypass:{reason}"] += 1
    if (t := trace.active.get()) is not None:
        t.query("bypass", compiler, reason=reason)
    if recording_active():
        taint(f"a read bypassed the query cache ({reason})")
    return original(compiler, *args)


class _Miss:
    """A read the cache did not answer: what to store after the database answers."""

    __slots__ = ("store", "shape", "snapshot", "missing", "cache_results")

    def __init__(self, store, shape, snapshot, missing, cache_results):
        self.store = store
        self.shape = shape
        self.snapshot = snapshot
        self.missing = missing
        self.cache_results = cache_results


_HIT = object()


def read(original, compiler, result_type, chunked_fetch, chunk_size):
    """``SQLCompiler.execute_sql`` for a SELECT: from the cache, or from the database."""
    args = (result_type, chunked_fetch, chunk_size)
    if result_type not in (MULTI, SINGLE):
        return original(compiler, *args)
    conf = strata_settings()
    if not conf.query_cache.enabled and not recording_active():
        return original(compiler, *args)
    if chunked_fetch:
        return _bypass("iterator()", original, compiler, *args)
    if compiler.query.select_for_update:
        note_row_locks(compiler.connection.alias)
        return _bypass("select_for_update", original, compiler, *args)
    if caching_is_disabled():
        return _bypass("caching disabled", original, compiler, *args)
    try:
        sql, params = compiler.as_sql()
    except Exception:  # EmptyResultSet, or the query's own error: Django handles it again
        return original(compiler, *args)
    if not sql:
        return original(compiler, *args)
    try:
        outcome = _look_up(compiler, sql, params, result_type, conf)
    except Exception:
        report_fault("looking a read up in the cache")
        outcome = "a fault in Strata"
    if isinstance(outcome, str):
        return _bypass(outcome, original, compiler, *args)
    if outcome[0] is _HIT:
        return outcome[1]
    miss = outcome[1]
    # Run the query with the SQL already compiled, instead of compiling it twice.
    compiler.as_sql = lambda *a, **k: (sql, params)
    try:
        result = original(compiler, *args)
    finally:
        del compiler.as_sql
    try:
        _remember(miss, result, result_type, conf)
    except Exception:
        report_fault("storing a read in the cache")
        taint("a fault in Strata")
    return result


def _look_up(compiler, sql: str, params, result_type, conf):
    """``(_HIT, value)``, ``(None, _Miss)``, or the reason to bypass the cache (a str)."""
    query_conf = conf.query_cache
    connection = compiler.connection
    tables = tables_in_sql(sql)
    if tables & query_conf.exclude_tables or any(
        (info := table_info(t)) is not None and info.app_label in query_conf.exclude_apps
        for t in tables
    ):
        return "excluded"
    dirty = dirty_tables(connection.alias)
    if dirty and (ALL in dirty or tables & dirty):
        return "written in this transaction"
    if not _may_cache_in_transaction(connection):
        return "transaction isolation"
    if not query_conf.cache_nondeterministic and is_nondeterministic(sql):
        return "nondeterministic"
    shape = _shape_of(connection, compiler.query, compiler, sql, params, result_type)
    if shape.unregistered:
        # Its writers (a historical model, MigrationRecorder, a private registry) may
        # change it without a table tag any reader could know: never cache it.
        return "a table no registered model owns"
    cache_results = query_conf.enabled
    # While a test captures queries, answer nothing from the cache: the counts are those
    # of the project without Strata. The result is still stored (a miss, not a bypass).
    serve = cache_results and not connection.force_debug_cursor
    tags, key = shape.tags, shape.key
    store = version_store(conf.cache_alias)
    try:
        versions, extras = store.get_with(tags | shape.stored, [key] if serve else [])
        cached = extras.get(key)
        if cached is not None:
            unknown = [tag for tag in cached[0] if tag not in versions]
            if unknown:
                versions.update(store.get_with(unknown)[0])
    except CacheUnavailable:
        stats["error"] += 1
        return "cache unavailable"
    if cached is not None and all(versions[tag] == v for tag, v in cached[0].items()):
        stats["hit"] += 1
        shape.stored = frozenset(cached[0])
        record(cached[0])
        if (t := trace.active.get()) is not None:
            t.query("hit", compiler, cached[0])
        return (_HIT, cached[1])
    snapshot, missing = store.provisional({tag: versions[tag] for tag in tags})
    if not shape.late:
        record(snapshot, missing)
    if cache_results:
        stats["miss"] += 1
        if not serve:
            stats["miss:queries captured"] += 1
    if (t := trace.active.get()) is not None:
        t.query("miss", compiler, tags, "" if serve else "query cache off or queries captured")
    if conf.replicas and connection.alias in conf.replicas:
        # The replica rule (docs/design.md): what a replica that has not replayed the writes
        # behind this snapshot returns is served, never stored.
        behind = replica_behind(connection)
        if behind is not None:
            stats["replica-behind"] += 1
            taint(behind)
            cache_results = False
    return (None, _Miss(store, shape, snapshot, missing, cache_results))


def _remember(miss: _Miss, result, result_type, conf) -> None:
    """Store what the database returned for a miss (when it may be stored)."""
    store, shape, snapshot, missing = miss.store, miss.shape, miss.snapshot, miss.missing
    if shape.late:
        result_rows = _rows_of(result, result_type)
        snapshot, missing, current = _pin_rows_late(store, shape, snapshot, missing, result_rows)
        record(snapshot, missing)
        if not current:
            return  # a write to a late-pinned table raced this read: do not store
    if not miss.cache_results:
        return  # only the tags were wanted (a page or fragment is being built)
    query_conf = conf.query_cache
    rows = 0 if result is None else (1 if result_type == SINGLE else sum(map(len, result)))
    if rows > query_conf.max_rows:
        return
    try:
        store.store(shape.key, (snapshot, result), query_conf.timeout, snapshot, missing)
        shape.stored = frozenset(snapshot)
        stats["store"] += 1
    except CacheUnavailable:
        stats["error"] += 1
    except (TypeError, AttributeError, pickle.PicklingError) as exc:  # unpicklable rows
        stats["error"] += 1
        log.warning("strata: could not store a query result (%s)", exc)


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
