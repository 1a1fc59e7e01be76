"""What Strata knows of the database schema: tables, their models, their condition columns.

A *condition column* is one that reads may depend on by equality (``article_id = 5``) and
that every write therefore reports with its old and new values: the primary key, the
foreign keys, and unique or indexed fields of simple types. Readers and writers take the
list from the same function, so a condition a reader relies on is always one a writer
changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

from django.apps import apps
from django.db import models

__all__ = ["TableInfo", "table_info", "known_tables", "tables_in_sql", "db_cascade_tables"]

_SIMPLE_TYPES = (
    models.AutoField,
    models.BigAutoField,
    models.SmallAutoField,
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
    models.CharField,
    models.SlugField,
    models.UUIDField,
    models.BooleanField,
    models.EmailField,
)


@dataclass(frozen=True)
class TableInfo:
    """A table and the model that owns it."""

    table: str
    model: type[models.Model]
    pk_column: str
    condition_columns: tuple[str, ...]
    app_label: str


def _is_condition_field(field: models.Field) -> bool:
    if field.primary_key or (field.is_relation and (field.many_to_one or field.one_to_one)):
        return True
    return bool(field.unique or field.db_index) and isinstance(field, _SIMPLE_TYPES)


def _condition_columns(model: type[models.Model]) -> tuple[str, ...]:
    fields = model._meta.concrete_fields
    return tuple(dict.fromkeys(f.column for f in fields if _is_condition_field(f)))


@cache
def _tables() -> dict[str, TableInfo]:
    tables: dict[str, TableInfo] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy or not meta.managed and not meta.db_table:
            continue
        if meta.db_table in tables:
            continue
        tables[meta.db_table] = TableInfo(
            table=meta.db_table,
            model=model,
            pk_column=meta.pk.column,
            condition_columns=_condition_columns(model),
            app_label=meta.app_label,
        )
    return tables


def table_info(table: str) -> TableInfo | None:
    """What is known of ``table`` (None for a table no model owns)."""
    return _tables().get(table)


def known_tables() -> frozenset[str]:
    """Every table that a model owns."""
    return frozenset(_tables())


@cache
def _table_pattern() -> re.Pattern[str]:
    names = sorted(_tables(), key=len, reverse=True)
    alternation = "|".join(re.escape(name) for name in names) or r"(?!x)x"
    # Quoted ("t", `t`, [t]) or a bare word: Django quotes its own SQL; RawSQL and
    # extra() may not.
    return re.compile(rf"(?<![\w$])[\"`\[]?({alternation})[\"`\]]?(?![\w$])", re.IGNORECASE)


@lru_cache(maxsize=4096)
def tables_in_sql(sql: str) -> frozenset[str]:
    """The known tables that ``sql`` mentions (a superset is safe; a subset is not).

    Remembered per SQL string: parameters are separate, so a site repeats few strings.
    """
    lowered = {name.lower(): name for name in _tables()}
    return frozenset(lowered[m.group(1).lower()] for m in _table_pattern().finditer(sql))


@cache
def db_cascade_tables(model: type[models.Model]) -> frozenset[str]:
    """Tables the database itself changes when rows of ``model`` go, transitively.

    Django 6.1's ``DB_CASCADE``, ``DB_SET_NULL`` and ``DB_SET_DEFAULT`` leave those
    changes to the database: no compiler sees them, so a delete must invalidate the
    tables they reach (whole tables: the rows are not known).
    """
    try:
        from django.db.models.deletion import DatabaseOnDelete
    except ImportError:  # Django before 6.1
        return frozenset()
    reached: set[str] = set()
    pending = [model]
    while pending:
        for relation in pending.pop()._meta.related_objects:
            on_delete = getattr(relation, "on_delete", None)
            if not isinstance(on_delete, DatabaseOnDelete):
                continue
            child = relation.related_model
            if child._meta.db_table not in reached:
                reached.add(child._meta.db_table)
                if on_delete.operation == "CASCADE":
                    pending.append(child)
    return frozenset(reached)


def clear_schema_cache() -> None:
    """Forget the table registry (after models change, in tests)."""
    _tables.cache_clear()
    _table_pattern.cache_clear()
    tables_in_sql.cache_clear()
    db_cascade_tables.cache_clear()
    from .monkey_patch import forget_memo

    forget_memo()
