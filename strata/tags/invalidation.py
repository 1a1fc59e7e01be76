"""Change versions after commit, and keep a transaction's own writes out of the cache.

Rule 3 of the consistency protocol (``docs/design.md``, "Never store what is not
committed"), in every transaction mode Django has:

* **autocommit, outside any block**: versions change at once (the statement committed);
* **atomic blocks** (``atomic``, ``ATOMIC_REQUESTS``, durable blocks, savepoints):
  ``transaction.on_commit``, which runs after the outermost block commits and forgets
  what a rolled-back savepoint registered;
* **manual transactions** (``set_autocommit(False)``, then ``commit()``/``rollback()``),
  including atomic blocks opened inside one (Django runs their ``on_commit`` callbacks
  only when autocommit is turned back on, long after the commit): a journal on the
  connection, made when ``commit()`` succeeds and dropped by ``rollback()``.

Every table written in an open transaction is *dirty* until the transaction ends:
reads of it bypass the cache, so what others could not see is never stored for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial, wraps

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from ..conf import strata_settings
from ..metrics.registry import INVALIDATED_TAGS, INVALIDATIONS
from ..signals import post_invalidation
from .naming import ALL
from .stores import version_store

__all__ = [
    "invalidate_after_commit",
    "dirty_tables",
    "transaction_open",
    "transaction_ended",
    "note_row_locks",
    "OWN_TRANSACTION_ATTR",
    "bump_now",
    "install",
]

log = logging.getLogger("strata.tags")

_JOURNAL_ATTR = "_strata_journal"
OWN_TRANSACTION_ATTR = "_strata_own_transaction"
"""Set on a connection while Strata holds a transaction of its own on it, unknown to
Django (``strata.querycache.bookkeeping.rows_held`` on SQLite): see :func:`transaction_ended`."""


class _Journal:
    """What the open transaction on one connection wrote."""

    __slots__ = ("tables", "pending")

    def __init__(self) -> None:
        self.tables: set[str] = set()
        """Tables written since the transaction began (dirty until it ends)."""
        self.pending: set[str] = set()
        """Tags to change when a manual transaction commits."""


def transaction_open(connection) -> bool:
    """True while ``connection`` is inside a transaction (an atomic block or autocommit off).

    Reads Django's own state only: it never opens a connection (a cache hit must not).
    """
    if connection.in_atomic_block or getattr(connection, OWN_TRANSACTION_ATTR, False):
        return True
    return connection.connection is not None and not connection.autocommit


def _managed_by_atomic(connection) -> bool:
    """True inside an atomic block that commits when it exits (autocommit was on)."""
    return connection.in_atomic_block and connection.commit_on_exit


def _journal(connection) -> _Journal | None:
    """The journal of the transaction open on ``connection``, None when none is open."""
    journal = getattr(connection, _JOURNAL_ATTR, None)
    if journal is None:
        return None
    if not transaction_open(connection):
        # The transaction ended without passing through commit() or rollback() (the
        # connection was closed, or committed below Django): the database rolled back
        # or committed, we cannot tell, so the tags it owed are changed anyway.
        setattr(connection, _JOURNAL_ATTR, None)
        if journal.pending:
            _bump_after_commit(connection.alias, frozenset(journal.pending))
        return None
    return journal


def dirty_tables(alias: str) -> frozenset[str] | set[str]:
    """Tables written by the transaction open on ``alias`` (empty in autocommit)."""
    journal = _journal(connections[alias])
    return journal.tables if journal is not None else frozenset()


def bump_now(tags: Iterable[str], using: str) -> bool:
    """Change the versions of ``tags`` at once (no transaction awareness), then send
    :data:`strata.signals.post_invalidation` (accelerator purges receive it).

    ``using`` is the database alias whose write invalidated the tags.
    """
    tags = frozenset(tags)
    store = version_store(strata_settings().cache_alias)
    changed, position = store.bump_logged(tags)
    INVALIDATIONS.inc()
    INVALIDATED_TAGS.inc(len(tags))
    for receiver, outcome in post_invalidation.send_robust(
        store, tags=tags, using=using, changed=changed, position=position
    ):
        if isinstance(outcome, Exception):  # Django logged its traceback (django.dispatch)
            log.error("strata: post_invalidation receiver %r failed: %r", receiver, outcome)
    return changed


def note_row_locks(alias: str) -> None:
    """The open transaction on ``alias`` locked rows (``SELECT ... FOR UPDATE``).

    Code that locks wants what is committed now: the writer that held the lock may have
    committed a moment ago and not yet changed its versions. Every later read of the
    transaction goes to the database (``docs/design.md``, "Read what the lock protects").
    """
    connection = connections[alias]
    if not transaction_open(connection):
        return  # autocommit: the lock ended with the statement
    journal = _journal(connection)
    if journal is None:
        journal = _Journal()
        setattr(connection, _JOURNAL_ATTR, journal)
    journal.tables.add(ALL)


def invalidate_after_commit(alias: str, tags: Iterable[str], tables: Iterable[str] = ()) -> None:
    """Change ``tags``' versions once the transaction open on ``alias`` commits.

    ``tables`` are the tables the write changed: dirty until the transaction ends.
    """
    tags = frozenset(tags)
    if not tags:
        return
    connection = connections[alias]
    if not transaction_open(connection):
        _bump_after_commit(alias, tags)
        return
    journal = _journal(connection)
    if journal is None:
        journal = _Journal()
        setattr(connection, _JOURNAL_ATTR, journal)
    journal.tables.update(tables)
    if _managed_by_atomic(connection):
        transaction.on_commit(partial(_bump_after_commit, alias, tags), using=alias, robust=True)
    else:
        journal.pending |= tags


def _bump_after_commit(alias: str, tags: frozenset[str]) -> None:
    try:
        changed = bump_now(tags, alias)
    except Exception:  # a misconfigured cache: the write committed, say so loudly
        log.exception("strata: versions of %s were not changed after commit", sorted(tags)[:10])
        return
    if not changed:
        log.error("strata: versions of %s were not changed after commit", sorted(tags)[:10])


def transaction_ended(connection, committed: bool) -> None:
    """A transaction Django did not see ended: make (or drop) what it owed."""
    if committed:
        _after_commit(connection)
    else:
        _after_rollback(connection)


def _after_commit(connection) -> None:
    journal = getattr(connection, _JOURNAL_ATTR, None)
    setattr(connection, _JOURNAL_ATTR, None)
    if journal is not None and journal.pending:
        _bump_after_commit(connection.alias, frozenset(journal.pending))


def _after_rollback(connection) -> None:
    setattr(connection, _JOURNAL_ATTR, None)


_installed = False


def install() -> None:
    """Follow ``commit()`` and ``rollback()`` on every connection (once per process)."""
    global _installed
    if _installed:
        return
    commit_original = BaseDatabaseWrapper.commit
    rollback_original = BaseDatabaseWrapper.rollback

    @wraps(commit_original)
    def commit(self):
        commit_original(self)
        _after_commit(self)

    @wraps(rollback_original)
    def rollback(self):
        try:
            rollback_original(self)
        finally:
            _after_rollback(self)

    BaseDatabaseWrapper.commit = commit  # type: ignore[method-assign]  # deliberate monkey patching
    BaseDatabaseWrapper.rollback = rollback  # type: ignore[method-assign]  # deliberate monkey patching
    _installed = True
