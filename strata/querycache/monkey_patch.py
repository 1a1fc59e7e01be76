"""The dangerous part: Strata's hooks into Django's SQL compilers, cursor and transactions.

Reads: ``SQLCompiler.execute_sql`` for a SELECT goes through :mod:`.reads`.

Writes, every path, through :mod:`.writes`: ``SQLInsertCompiler`` (save, create,
bulk_create, m2m add, loaddata), ``SQLUpdateCompiler`` (save, QuerySet.update,
bulk_update, on_delete=SET_NULL; Django 6.1's ``execute_returning_sql``),
``SQLDeleteCompiler`` (delete, cascades, fast deletes, m2m remove/clear), and
``CursorWrapper.execute``/``executemany`` for raw SQL. ``migrate`` invalidates
everything. Each write changes versions after commit, in every transaction mode
(:mod:`strata.tags.invalidation`, which follows ``commit()``/``rollback()``).

The hooks only dispatch; each module they call keeps its faults to itself.
"""

from __future__ import annotations

from functools import wraps

from django.db.backends.utils import CursorWrapper
from django.db.models.sql.compiler import (
    SQLCompiler,
    SQLDeleteCompiler,
    SQLInsertCompiler,
    SQLUpdateCompiler,
)
from django.db.models.sql.constants import MULTI

from ..tags import invalidation
from . import reads, writes
from .control import in_orm

__all__ = ["install", "is_installed"]

_installed = False


def is_installed() -> bool:
    """True once the hooks are in place."""
    return _installed


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
        args = (result_type, chunked_fetch, chunk_size)
        if isinstance(self, SQLDeleteCompiler):
            token = in_orm.set(True)
            try:
                return writes.delete(select_original, self, args)
            finally:
                in_orm.reset(token)
        if isinstance(self, SQLUpdateCompiler | SQLInsertCompiler):
            return select_original(self, *args)  # their own hooks below called us
        token = in_orm.set(True)
        try:
            return reads.read(select_original, self, *args)
        finally:
            in_orm.reset(token)

    @wraps(update_original)
    def update_execute_sql(self, result_type):
        token = in_orm.set(True)
        try:
            return writes.update(update_original, self, result_type)
        finally:
            in_orm.reset(token)

    # Django 6.1: UPDATE ... RETURNING for save() with expressions or generated fields.
    returning_original = getattr(SQLUpdateCompiler, "execute_returning_sql", None)
    if returning_original is not None:

        @wraps(returning_original)
        def update_execute_returning_sql(self, returning_fields):
            token = in_orm.set(True)
            try:
                return writes.update_returning(returning_original, self, returning_fields)
            finally:
                in_orm.reset(token)

        SQLUpdateCompiler.execute_returning_sql = update_execute_returning_sql  # type: ignore[attr-defined]  # Django 6.1+; stubs are 5.2's

    @wraps(insert_original)
    def insert_execute_sql(self, returning_fields=None):
        return writes.insert(insert_original, self, returning_fields)

    execute_original = CursorWrapper.execute
    executemany_original = CursorWrapper.executemany

    @wraps(execute_original)
    def execute(self, sql, params=None):
        result = execute_original(self, sql, params)
        writes.raw(self, sql)
        return result

    @wraps(executemany_original)
    def executemany(self, sql, param_list):
        result = executemany_original(self, sql, param_list)
        writes.raw(self, sql)
        return result

    SQLCompiler.execute_sql = execute_sql  # type: ignore[method-assign]  # deliberate monkey patching
    SQLUpdateCompiler.execute_sql = update_execute_sql  # type: ignore[method-assign]  # deliberate monkey patching
    SQLInsertCompiler.execute_sql = insert_execute_sql  # type: ignore[method-assign]  # deliberate monkey patching
    CursorWrapper.execute = execute  # type: ignore[method-assign]  # deliberate monkey patching
    CursorWrapper.executemany = executemany  # type: ignore[method-assign]  # deliberate monkey patching
    invalidation.install()
    writes.install_signals()
    _installed = True
