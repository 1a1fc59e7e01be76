"""A request that wrote answers once its first purges are out.

Every committed invalidation reaches the accelerators in the background: through the
invalidation log, which ``strata_purger`` delivers (:mod:`strata.bus`), or, where the
version store keeps no log (Memcached, a local cache) or could not write it, through this
process's own purger (:mod:`strata.edge.purge`). Either way a ticket is collected by the
request whose write started it, and ``StrataMiddleware`` holds that request's response
until the tickets resolve, at most ``PURGE_WAIT`` seconds: the writer's next page view,
or anyone's, is not an old copy (``docs/pages.md``, Varnish purges).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextvars import ContextVar

from ..bus import bus_log
from ..bus.waiting import LogTicket
from ..signals import post_invalidation
from .purge import PurgeTicket, purger

__all__ = [
    "purge_tags",
    "begin_request",
    "collect_tickets",
    "wait_for_tickets",
    "purge_after_invalidations",
]

log = logging.getLogger("strata.edge")

# Per request: the tickets of the purges its writes started. A ContextVar behaves as a
# thread-local under WSGI and follows the request under ASGI.
_request_tickets: ContextVar[list[PurgeTicket | LogTicket] | None] = ContextVar(
    "strata_purge_tickets", default=None
)


def purge_tags(tags: Iterable[str], soft: bool = False) -> PurgeTicket | None:
    """Purge ``tags`` on every accelerator in the background (None: none configured).

    Inside a request (after :func:`begin_request`) the ticket is also collected, so that
    the response can wait for it.
    """
    current = purger()
    if current is None:
        return None
    ticket = current.purge(tags, soft=soft)
    tickets = _request_tickets.get()
    if tickets is not None:
        # Keep the list short in a request that writes a lot: a success needs no wait.
        tickets[:] = [t for t in tickets if not t.succeeded]
        tickets.append(ticket)
    return ticket


def begin_request() -> None:
    """Start collecting the current request's purge tickets (before the view runs)."""
    _request_tickets.set([])


def collect_tickets() -> list[PurgeTicket | LogTicket]:
    """The tickets collected since :func:`begin_request` (empty outside a request);
    tickets that already succeeded may have been dropped."""
    return list(_request_tickets.get() or ())


def wait_for_tickets(timeout: float) -> bool:
    """Wait at most ``timeout`` seconds in all for the current request's first purges,
    and stop collecting. True when every one succeeded (or there were none)."""
    tickets = _request_tickets.get() or []
    _request_tickets.set(None)
    deadline = time.monotonic() + max(timeout, 0.0)
    ok = True
    for ticket in tickets:
        if not ticket.wait(max(deadline - time.monotonic(), 0.0)):
            ok = False
    if not ok:
        log.debug("strata: the response went out before its purges were confirmed")
    return ok


def _purge_invalidated(sender, tags: frozenset[str], position=None, **kwargs) -> None:
    log_ = bus_log() if position is not None else None
    if log_ is None:
        # No log, or the change could not be written to it: purge from here.
        purge_tags(tags)
        return
    tickets = _request_tickets.get()
    if tickets is not None:
        # Positions only grow: the newest change's ticket covers the earlier ones.
        tickets[:] = [t for t in tickets if not isinstance(t, LogTicket) and not t.succeeded]
        tickets.append(LogTicket(log_, position))


def purge_after_invalidations() -> None:
    """Purge the accelerators after every committed invalidation (idempotent).

    The one place the purges subscribe to invalidations (at start-up, ``StrataConfig``).
    """
    post_invalidation.connect(_purge_invalidated, dispatch_uid="strata-edge-purge")
