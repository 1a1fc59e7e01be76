"""Strata's public API for the query cache and dependency tags.

::

    from strata import api

    api.invalidate_model(Article)           # every cached read of the table
    api.invalidate_instance(article)        # reads that depend on this row
    api.invalidate_queryset(Comment.objects.filter(article_id=5))
    api.invalidate_tags("newsroom_comment.article_id=5")
    api.invalidate_all()

    with api.recording() as recorder:       # what did this block read?
        list(Comment.objects.filter(article_id=5))
    recorder.tags                           # {"*", "newsroom_comment.bulk", "newsroom_comment.article_id=5"}

    with api.caching_disabled():            # read from the database in this block
        ...

    @api.caching_disabled()                 # ...or for a whole view
    def checkout(request): ...

Invalidations made inside a transaction take effect when it commits, like automatic ones.
Code that acts on every invalidation connects to :data:`strata.signals.post_invalidation`
(``docs/signals.md``).
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, models, router

from .querycache.analysis import read_tags, row_tags
from .querycache.control import caching_disabled
from .tags.invalidation import invalidate_after_commit
from .tags.naming import ALL, bulk_tag, table_tag
from .tags.recorder import current_tags, recording

__all__ = [
    "invalidate_model",
    "invalidate_instance",
    "invalidate_queryset",
    "invalidate_tags",
    "invalidate_all",
    "queryset_tags",
    "recording",
    "current_tags",
    "caching_disabled",
]


def invalidate_tags(*tags: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Change the versions of raw tags (after the current transaction on ``using`` commits)."""
    invalidate_after_commit(using, set(tags))


def invalidate_model(model: type[models.Model], using: str | None = None) -> None:
    """Invalidate every cached read of ``model``'s table."""
    table = model._meta.db_table
    alias = using or router.db_for_write(model)
    invalidate_after_commit(alias, {table_tag(table), bulk_tag(table)}, {table})


def invalidate_instance(instance: models.Model, using: str | None = None) -> None:
    """Invalidate the cached reads that depend on this row (its tables, its conditions).

    A child of multi-table inheritance has a row in each table of its chain: all go.
    """
    meta = instance._meta
    alias = using or instance._state.db or router.db_for_write(type(instance))
    concrete = meta.concrete_model
    if concrete is None:  # only an abstract model has none, and it has no instances
        raise TypeError(f"{type(instance).__name__} has no concrete model to invalidate")
    tags: set[str] = set()
    tables: set[str] = set()
    for model in [concrete, *concrete._meta.get_parent_list()]:
        table = model._meta.db_table
        row = {
            f.column: getattr(instance, f.attname, None) for f in model._meta.local_concrete_fields
        }
        tags |= {table_tag(table)} | row_tags(table, [row])
        tables.add(table)
    invalidate_after_commit(alias, tags, tables)


def queryset_tags(queryset: models.QuerySet) -> frozenset[str]:
    """The tags a read of ``queryset`` depends on (what invalidating it changes)."""
    compiler = queryset.query.get_compiler(queryset.db)
    sql, _ = compiler.as_sql()
    simple = not queryset.query.combinator and sql.upper().count("SELECT") == 1
    return read_tags(queryset.query, sql, simple=simple) - {ALL}


def invalidate_queryset(queryset: models.QuerySet) -> None:
    """Invalidate cached reads that depend on what ``queryset`` selects.

    For a queryset pinned to rows (``filter(article_id=5)``) that is the condition's tag:
    every cached read of those rows goes. Otherwise it is the tables it reads.
    """
    invalidate_after_commit(queryset.db, queryset_tags(queryset))


def invalidate_all(using: str = DEFAULT_DB_ALIAS) -> None:
    """Invalidate every cached artifact."""
    invalidate_after_commit(using, {ALL}, {ALL})
