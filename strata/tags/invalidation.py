"""Change versions after commit, and keep a transaction's own writes out of the cache.

Rule 3 of the consistency protocol: a writer changes versions only after its
transaction commits (``transaction.on_commit``, which runs at once in autocommit and is
discarded with a rolled-back transaction or savepoint); inside a transaction that wrote
a table, reads of that table bypass the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial

from django.db import connections, transaction

from ..conf import strata_settings
from .versions import version_store

__all__ = [
    "invalidate_after_commit",
    "dirty_tables",
    "bump_now",
    "after_invalidation",
    "on_invalidation",
]

log = logging.getLogger("strata.tags")

# connection alias -> tables written in the current transaction (per thread, like the
# connections themselves: stored on the connection object).
_DIRTY_ATTR = "_strata_dirty_tables"


def dirty_tables(alias: str) -> set[str]:
    """Tables written by the current transaction on ``alias`` (empty in autocommit)."""
    connection = connections[alias]
    dirty = getattr(connection, _DIRTY_ATTR, None)
    if dirty is None:
        return set()
    if not connection.in_atomic_block:
        # The transaction ended (committed or rolled back) since it wrote.
        dirty.clear()
    return dirty


# Called with the tags of every invalidation, after the versions changed: the layers
# above (accelerator purges) register here, so that tags never import them.
_listeners: list[Callable[[frozenset[str]], None]] = []


def on_invalidation(listener: Callable[[frozenset[str]], None]) -> None:
    """Call ``listener(tags)`` after every committed invalidation (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def after_invalidation(tags: frozenset[str]) -> None:
    """Tell the listeners that ``tags`` changed; a failing listener is logged, not raised."""
    for listener in list(_listeners):
        try:
            listener(tags)
        except Exception:
            log.exception("strata: invalidation listener %r failed", listener)


def bump_now(tags: Iterable[str]) -> bool:
    """Change the versions of ``tags`` at once (no transaction awareness), then tell the
    listeners (accelerator purges)."""
    tags = frozenset(tags)
    changed = version_store(strata_settings().cache_alias).bump(tags)
    after_invalidation(tags)
    return changed


def invalidate_after_commit(alias: str, tags: Iterable[str], tables: Iterable[str] = ()) -> None:
    """Change ``tags``' versions once the current transaction on ``alias`` commits."""
    tags = frozenset(tags)
    if not tags:
        return
    connection = connections[alias]
    if connection.in_atomic_block:
        dirty = getattr(connection, _DIRTY_ATTR, None)
        if dirty is None:
            dirty = set()
            setattr(connection, _DIRTY_ATTR, dirty)
        dirty.update(tables)
    transaction.on_commit(partial(_bump_after_commit, tags), using=alias)


def _bump_after_commit(tags: frozenset[str]) -> None:
    if not bump_now(tags):
        log.error("strata: versions of %s were not changed after commit", sorted(tags)[:10])
