"""A request that wrote waits until the purger has sent its change to every node.

The version store returns the log position of each bump; the request's response is held
(at most ``PURGE_WAIT`` seconds, by ``StrataMiddleware``) until every node's *attempted*
position has reached it, so that the page its redirect shows is not the old copy. With
no purger running (no lease held, no node ever served) there is nobody to wait for.
"""

from __future__ import annotations

import logging
import time

from ..tags.changelog import ZERO, entry_id
from ..tags.versions import RateLimitedWarnings
from .log import InvalidationLog

__all__ = ["LogTicket"]

log = logging.getLogger("strata.bus")
_warnings = RateLimitedWarnings(interval=30.0)

# Seconds between looks at the positions: doubling from the first up to the last.
_FIRST_POLL = 0.0005
_LAST_POLL = 0.02


class LogTicket:
    """The promise that a logged change reaches the accelerators (as a
    :class:`strata.edge.purge.PurgeTicket` promises a direct purge)."""

    __slots__ = ("log", "position", "_ok")

    def __init__(self, log_: InvalidationLog, position: str):
        self.log = log_
        self.position = entry_id(position)
        self._ok = False

    @property
    def succeeded(self) -> bool:
        """True once every node got the change: nobody needs to wait for it any more."""
        return self._ok

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the purger tried the change on every node, at most ``timeout``
        seconds; True only when every node purged it."""
        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        pause = _FIRST_POLL
        while True:
            try:
                nodes, attempted, delivered, leased = self.log.progress()
            except Exception as exc:
                _warnings.warn("progress", "strata: cannot follow the purger (%s)", exc)
                return False
            if nodes and all(attempted.get(n, ZERO) >= self.position for n in nodes):
                self._ok = all(delivered.get(n, ZERO) >= self.position for n in nodes)
                return self._ok
            if not nodes and not leased:
                _warnings.warn(
                    "no purger",
                    "strata: no strata_purger runs: changes reach no accelerator "
                    "(run `manage.py strata_purger`, docs/bus.md)",
                )
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, _LAST_POLL)
