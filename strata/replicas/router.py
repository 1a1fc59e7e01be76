"""Route reads to the replicas and writes to the primary; a context that wrote reads the primary.

Read-your-own-writes: a write (anything Django routes with ``db_for_write``: save,
create, update, delete, ``select_for_update``, ``get_or_create``...) pins the current
context to the primary. Inside a request that :class:`ReadYourWritesMiddleware` wraps,
the pin lasts for the rest of the request and, through a signed cookie, for
``STRATA['READ_YOUR_WRITES']`` seconds of the same client's next requests. Outside a
request (a management command, a worker), it lasts ``READ_YOUR_WRITES`` seconds after the
context's last write.
"""

from __future__ import annotations

import contextvars
import random
import time

from django.db import DEFAULT_DB_ALIAS, connections

from ..conf import strata_settings
from ..tags.invalidation import dirty_tables

__all__ = ["ReplicaRouter", "note_write", "reads_from_primary", "Pin"]


class Pin:
    """Whether the current context reads from the primary (it wrote, or wrote recently)."""

    __slots__ = ("until", "in_request", "wrote")

    def __init__(self, in_request: bool = False, until: float = 0.0):
        self.in_request = in_request
        self.until = until
        """``time.monotonic()`` until which reads go to the primary."""
        self.wrote = False
        """True once this context wrote (a request then answers with the cookie)."""


# A mutable holder, not a flag: a write in a thread that copied the context (a sync view
# under ASGI) must still pin the request that started it.
_pin: contextvars.ContextVar[Pin | None] = contextvars.ContextVar("strata_pin", default=None)


def note_write() -> None:
    """Pin the current context to the primary: it wrote, so it must read its write."""
    pin = _pin.get()
    if pin is None:
        pin = Pin()
        _pin.set(pin)
    pin.wrote = True
    pin.until = max(pin.until, time.monotonic() + strata_settings().read_your_writes)


def reads_from_primary() -> bool:
    """True while the current context must read from the primary (its own writes)."""
    pin = _pin.get()
    if pin is None:
        return False
    return (pin.in_request and pin.wrote) or time.monotonic() < pin.until


def _primary_transaction_wrote() -> bool:
    primary = connections[DEFAULT_DB_ALIAS]
    return primary.in_atomic_block and bool(dirty_tables(DEFAULT_DB_ALIAS))


class ReplicaRouter:
    """Reads from ``STRATA['REPLICAS']``, writes to ``"default"``.

    A read goes to the primary when the context wrote (see the module's docstring) or
    when a transaction on the primary has written (it must see its own uncommitted rows);
    otherwise to a replica chosen at random. Replicas never migrate: they replay the
    primary's schema.
    """

    primary = DEFAULT_DB_ALIAS
    primary_only = frozenset({"sessions.session"})
    """Models always read from the primary. Sessions: Django's ``cached_db`` engine puts
    what it reads back into the cache, so a session read from a lagging replica after a
    logout would bring the deleted session back for its whole lifetime."""

    def db_for_read(self, model, **hints):
        replicas = strata_settings().replicas
        if (
            not replicas
            or model._meta.label_lower in self.primary_only
            or reads_from_primary()
            or _primary_transaction_wrote()
        ):
            return self.primary
        return replicas[0] if len(replicas) == 1 else random.choice(replicas)

    def db_for_write(self, model, **hints):
        note_write()
        return self.primary

    def allow_relation(self, obj1, obj2, **hints):
        databases = {self.primary, *strata_settings().replicas}
        if obj1._state.db in databases and obj2._state.db in databases:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if db in strata_settings().replicas:
            return False
        return None
