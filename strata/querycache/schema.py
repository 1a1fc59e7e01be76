"""What Strata knows of the database schema: tables, their models, their condition columns.

A *condition column* is one that reads may depend on by equality (``article_id = 5``) and
that every write therefore reports with its old and new values: the primary key, the
foreign keys, and unique or indexed fields of simple types. Readers and writers take the
list from the same function, so a condition a reader relies on is always one a writer
changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, lru_cache

from django.apps import apps
from django.core.signals import setting_changed
from django.db import models
from django.db.models import Model
from django.db.models.signals import class_prepared

from ..signals import schema_changed

__all__ = [
    "TableInfo",
    "table_info",
    "known_tables",
    "tables_in_sql",
    "db_cascade_tables",
    "clear_schema_cache",
]

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
    """A table, the registered models that own it, and the columns reads may pin."""

    table: str
    model: type[Model]
    """The first registered model on the table (several may share it: unmanaged copies)."""
    pk_columns: tuple[str, ...]
    """The primary key's columns (several for a composite primary key)."""
    condition_columns: tuple[str, ...]
    app_label: str
    fields: dict[str, models.Field] = field(default_factory=dict, compare=False, hash=False)
    """Column name -> the field that declares it (for values written to condition tags)."""
    models: frozenset[type[Model]] = frozenset()
    """Every registered model on the table (this field shadows the ``models`` module in
    the class body, hence ``Model`` in the annotations here)."""

    @property
    def pk_column(self) -> str | None:
        """The primary key's column, None for a composite primary key."""
        return self.pk_columns[0] if len(self.pk_columns) == 1 else None

    def knows_rows_of(self, model: type[Model]) -> bool:
        """True when a write through ``model`` can name its rows' condition values.

        ``model`` must be one of the registered models of the table and declare every
        condition column itself: a historical model in a migration, a model made at run
        time or an unmanaged copy with fewer fields cannot, and its writes invalidate the
        whole table instead (a statement naming columns it does not have could fail
        where the write itself would not).
        """
        if model not in self.models:
            return False
        own = {f.column for f in model._meta.local_concrete_fields}
        return own.issuperset(self.condition_columns)


def _is_condition_field(field: models.Field) -> bool:
    if field.primary_key or (field.is_relation and (field.many_to_one or field.one_to_one)):
        return True
    db_index = field.db_index  # type: ignore[attr-defined]  # set in Field.__init__; django-stubs 5.2.9 omit it
    return bool(field.unique or db_index) and isinstance(field, _SIMPLE_TYPES)


def _pk_columns(model: type[models.Model]) -> tuple[str, ...]:
    pk = model._meta.pk
    if pk.column is not None:
        return (pk.column,)
    return tuple(f.column for f in getattr(pk, "fields", ()))  # CompositePrimaryKey (5.2+)


def _local_condition_fields(model: type[models.Model]) -> list[models.Field]:
    """The condition fields stored in ``model``'s own table (not its parents')."""
    pk_columns = set(_pk_columns(model))
    return [
        f
        for f in model._meta.local_concrete_fields
        if f.column is not None and (f.column in pk_columns or _is_condition_field(f))
    ]


@cache
def _tables() -> dict[str, TableInfo]:
    owners: dict[str, list[type[models.Model]]] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy or not meta.managed and not meta.db_table:
            continue
        owners.setdefault(meta.db_table, []).append(model)
    tables: dict[str, TableInfo] = {}
    for table, models_of_table in owners.items():
        first = models_of_table[0]
        fields: dict[str, models.Field] = {}
        for model in models_of_table:
            for f in _local_condition_fields(model):
                fields.setdefault(f.column, f)
        tables[table] = TableInfo(
            table=table,
            model=first,
            pk_columns=_pk_columns(first),
            condition_columns=tuple(fields),
            app_label=first._meta.app_label,
            fields=fields,
            models=frozenset(models_of_table),
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
        from django.db.models.deletion import (  # type: ignore[attr-defined]  # Django 6.1+; stubs are 5.2's
            DatabaseOnDelete,
        )
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
            if isinstance(child, str):  # "self" is resolved before a relation is registered
                raise TypeError(f"unresolved relation {relation!r} to {child!r}")
            if child._meta.db_table not in reached:
                reached.add(child._meta.db_table)
                if on_delete.operation == "CASCADE":
                    pending.append(child)
    return frozenset(reached)


def clear_schema_cache() -> None:
    """Forget the table registry, and send :data:`strata.signals.schema_changed`."""
    _tables.cache_clear()
    _table_pattern.cache_clear()
    tables_in_sql.cache_clear()
    db_cascade_tables.cache_clear()
    schema_changed.send(sender=None)


def _model_prepared(sender, **kwargs) -> None:
    if sender._meta.apps is apps and _tables.cache_info().currsize:
        clear_schema_cache()  # a model registered at run time (tests, dynamic models)


def _setting_changed(setting: str, **kwargs) -> None:
    if setting == "INSTALLED_APPS":
        clear_schema_cache()


class_prepared.connect(_model_prepared, dispatch_uid="strata-schema-model-prepared")
setting_changed.connect(_setting_changed, dispatch_uid="strata-schema-setting-changed")
