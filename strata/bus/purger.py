"""The purger: reads the invalidation log and purges every accelerator, at least once.

One purger delivers at a time: it holds a lease in Redis (renewed every round), and any
number of others stand by to take over when it expires, or at once when its holder is a
process of this host that died. Each round:

1. **Resume or start over.** A node without a delivered position (never served, or the
   log's records were lost with Redis's data), or whose position is older than what the
   log trimmed, cannot be told what it missed: its whole cache is banned
   (``X-Strata-Purge-All``), and it resumes from the head read before the ban.
2. **First purges.** The entries after each node's delivered position, their tags merged
   into ``xkey-purge`` requests, sent to every node in parallel. A node that answers moves
   its ``delivered`` position; every node tried moves ``attempted`` (what a request that
   wrote waits for). A node that fails is retried with a growing backoff, and is fenced
   meanwhile (``strata.edge.fence``): it stays behind the log, so its readiness fails.
3. **Second purges**, ``PURGE_DELAY`` after each entry, tracked the same way: a page
   rendered from the old data just before the commit can reach a node just after the
   first purge.
4. **Trim** what every node has had, keeping the last minute for the status pages.

Entries older than the horizon (the shared TTL plus grace) are passed over without a
request: no node can hold a page that old. A purger killed at any point loses nothing:
the positions are only moved after delivery, so the next one sends again from there.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..edge.fence import node_id
from ..edge.purge import MAX_BACKOFF, Purger
from ..stack.process import pid_alive
from ..tags.changelog import ZERO, EntryId
from .log import Entry, InvalidationLog, LogState

__all__ = ["BusPurger", "LEASE_TTL"]

log = logging.getLogger("strata.bus")

#: Seconds a lease lasts without renewal: how long a purger that hangs (or one on another
#: host that died) holds the others back.
LEASE_TTL = 3.0

#: Entries read per batch.
BATCH = 500

#: The last minute of the log is kept whatever was delivered (status pages, a second
#: purger's takeover).
KEEP_MS = 60_000

_FIRST_BACKOFF = 0.05


class BusPurger:
    """Delivers one invalidation log to ``accelerators`` (purge URLs), in rounds."""

    def __init__(
        self,
        log_: InvalidationLog,
        accelerators: Sequence[str],
        secret: str,
        delay: float,
        horizon: float,
        *,
        holder: str | None = None,
        timeout: float = 2.0,
    ):
        self.log = log_
        self.delivery = Purger(accelerators, secret, delay, timeout=timeout)
        self.nodes = [node_id(url) for url in accelerators]
        self.delay_ms = int(delay * 1000)
        self.horizon_ms = int(horizon * 1000)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.leading = False
        self._renew_at = 0.0
        self._identity: str | None = None
        self._not_before: dict[int, float] = {}
        self._failures: Counter[int] = Counter()
        self._trimmed_at = 0.0
        self._pool = ThreadPoolExecutor(max(1, min(len(self.nodes), 16)), "strata-bus-node")

    def __repr__(self) -> str:
        return f"<BusPurger {self.holder} → {', '.join(self.nodes)}>"

    # -- running -----------------------------------------------------------------------
    def run(self, stop: threading.Event, block: float = 0.2) -> None:
        """Deliver until ``stop`` is set; a failing Redis is waited out, never fatal."""
        log.info("strata purger %s: delivering to %s", self.holder, ", ".join(self.nodes))
        quiet_until = 0.0
        try:
            while not stop.is_set():
                try:
                    if self.lead():
                        self.round(block)
                    else:
                        stop.wait(LEASE_TTL / 4)
                except Exception as exc:  # Redis down or restarting: try again shortly
                    self.leading = False
                    if time.monotonic() >= quiet_until:
                        log.warning("strata purger %s: %s; retrying", self.holder, exc)
                        quiet_until = time.monotonic() + 10
                    stop.wait(0.5)
        finally:
            self.close()

    def close(self) -> None:
        """Give the lease up (a standby takes over at once) and stop the node threads."""
        if self.leading:
            with contextlib.suppress(Exception):  # Redis down: the lease expires anyway
                self.log.release_lease(self.holder)
            self.leading = False
        self._pool.shutdown(wait=False)
        self.delivery.close(timeout=0)

    def deliver_once(self) -> None:
        """Deliver what the log holds now (takes the lease, even from a live holder's
        expired one) and return: for tests and ``strata_purger --once``."""
        deadline = time.monotonic() + LEASE_TTL * 2
        while not self.lead():
            if time.monotonic() > deadline:
                raise RuntimeError("another purger holds the lease")
            time.sleep(0.1)
        while self.round(block=None):
            pass

    def lead(self) -> bool:
        """Hold (or renew) the lease; True while this purger is the one delivering."""
        now = time.monotonic()
        if self.leading and now < self._renew_at:
            return True
        holder = self.log.hold_lease(self.holder, LEASE_TTL)
        if holder != self.holder and self._died_here(holder):
            holder = self.log.hold_lease(self.holder, LEASE_TTL, dead=holder)
        was, self.leading = self.leading, holder == self.holder
        if self.leading:
            self._renew_at = now + LEASE_TTL / 3
            if not was:
                log.info("strata purger %s: delivering (the lease is ours)", self.holder)
                self.log.serve_nodes(self.nodes)
        elif was:
            log.warning("strata purger %s: %s took over; standing by", self.holder, holder)
        return self.leading

    def _died_here(self, holder: str) -> bool:
        host, _, pid = holder.rpartition(":")
        return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))

    # -- one round ---------------------------------------------------------------------
    def round(self, block: float | None) -> bool:
        """One round (see the module's docstring); True when it delivered anything.
        ``block``: seconds to wait for a new entry when there is nothing to do."""
        state = self.log.state()
        if state.fresh:
            if self._identity is not None:
                log.warning(
                    "strata purger: the invalidation log was lost (Redis lost its data or "
                    "failed over): every node starts over"
                )
            self.log.start_positions(state.identity)
        self._identity = state.identity
        self._mark_stalled_attempted(state)
        did = self._start_over(state)
        did = self._first_purges(state, block if not did else None) or did
        did = self._second_purges(state) or did
        if time.monotonic() - self._trimmed_at > 5:
            self._trim(state)
        return did

    def _due(self, index: int) -> bool:
        return time.monotonic() >= self._not_before.get(index, 0.0)

    def _failed(self, index: int) -> None:
        self._failures[index] += 1
        backoff = min(_FIRST_BACKOFF * 2 ** (self._failures[index] - 1), MAX_BACKOFF)
        self._not_before[index] = time.monotonic() + backoff

    def _succeeded(self, index: int) -> None:
        self._failures.pop(index, None)
        self._not_before.pop(index, None)

    def _mark_stalled_attempted(self, state: LogState) -> None:
        """Nodes waiting out a backoff count as tried up to the head: a request that
        wrote does not wait for a node that is known to fail (the fence holds it out)."""
        head = state.head
        if head is None:
            return
        moves = [
            ("attempted", node, head)
            for index, node in enumerate(self.nodes)
            if not self._due(index) and state.attempted.get(node, ZERO) < head
        ]
        if moves:
            self._advance(moves, {}, None)
            for _, node, _ in moves:
                state.attempted[node] = head

    def _start_over(self, state: LogState) -> bool:
        """Ban whole the nodes that cannot resume from a position of theirs."""
        new = {node for node in self.nodes if node not in state.delivered}
        lost = [
            index
            for index, node in enumerate(self.nodes)
            if self._due(index) and (node in new or state.delivered[node] < state.trimmed)
        ]
        if not lost:
            return False
        head = state.head or ZERO
        results = self._parallel(lost, self.delivery.purge_everything)
        moves, failure = [], None
        # The second purge still covers the last PURGE_DELAY before the ban (a page
        # rendered from old data may arrive after it).
        second = EntryId(max(state.now_ms - self.delay_ms - 1000, 0), 0)
        for index, (ok, reason) in results.items():
            node = self.nodes[index]
            if ok:
                self._succeeded(index)
                if node in new:  # first served (or Redis lost the records): routine
                    log.info("strata purger: %s is new to the log: emptied its cache", node)
                else:
                    log.warning(
                        "strata purger: %s missed changes the log no longer holds: "
                        "banned its whole cache",
                        node,
                    )
                moves += [("delivered", node, head), ("attempted", node, head)]
                if state.second.get(node, ZERO) < second:
                    moves.append(("second", node, min(second, head)))
            else:
                self._failed(index)
                failure = f"{time.time():.3f} {node} full purge: {reason}"
        ok_count = sum(1 for ok, _ in results.values() if ok)
        self._advance(
            moves,
            {
                "full_purges": ok_count,
                "requests": len(results),
                "failures": len(results) - ok_count,
            },
            failure,
        )
        for index, (ok, _) in results.items():
            if ok:
                state.delivered[self.nodes[index]] = head
        return True

    def _first_purges(self, state: LogState, block: float | None) -> bool:
        due = [i for i, node in enumerate(self.nodes) if self._due(i) and node in state.delivered]
        if not due:
            if block:
                time.sleep(min(block, 0.05))
            return False
        start = min(state.delivered[self.nodes[i]] for i in due)
        caught_up = state.head is None or start >= state.head
        # Blocking also paces the second purges: they ripen while it waits, at most
        # ``block`` late.
        block_ms = int(block * 1000) if block and caught_up else None
        entries = self.log.read(start, BATCH, block_ms)
        if not entries:
            return False
        if caught_up:
            state.now_ms = max(state.now_ms, entries[-1].id.ms)
        jobs = {}
        for index in due:
            cursor = state.delivered[self.nodes[index]]
            mine = [entry for entry in entries if entry.id > cursor]
            if mine:
                jobs[index] = (mine[-1].id, self._tags(mine, state.now_ms))
        if not jobs:
            return False
        results = self._parallel(
            [i for i, (_, wanted) in jobs.items() if wanted],
            lambda i: self.delivery.deliver(i, jobs[i][1]),
        )
        moves, failure = [], None
        tags: set[str] = set()
        for index, (last, wanted) in jobs.items():
            node = self.nodes[index]
            ok, reason = results.get(index, (True, "nothing left to purge"))
            moves.append(("attempted", node, last))
            tags |= wanted
            if ok:
                self._succeeded(index)
                moves.append(("delivered", node, last))
                state.delivered[node] = last
            else:
                self._failed(index)
                failure = f"{time.time():.3f} {node}: {reason}"
                log.warning("strata purger: purge on %s failed (%s); retrying", node, reason)
        failed = sum(1 for ok, _ in results.values() if not ok)
        counts = {
            "batches": 1,
            "tags": len(tags),
            "requests": len(results),
            "failures": failed,
            "retries": sum(1 for i in results if self._failures[i] > 1),
        }
        self._advance(moves, counts, failure)
        return True

    def _second_purges(self, state: LogState) -> bool:
        ripe = EntryId(state.now_ms - self.delay_ms, 2**63 - 1)
        groups: dict[tuple[EntryId, EntryId], list[int]] = {}
        for index, node in enumerate(self.nodes):
            if not self._due(index) or node not in state.delivered:
                continue
            after = state.second.get(node, ZERO)
            through = min(state.delivered[node], ripe)
            if after < through:
                groups.setdefault((after, through), []).append(index)
        did = False
        for (after, through), indexes in groups.items():
            entries = self.log.between(after, through, BATCH)
            if not entries:
                continue
            tags = self._tags(entries, state.now_ms)
            results = (
                self._parallel(indexes, functools.partial(self._deliver, tags=tags)) if tags else {}
            )
            moves, failure = [], None
            for index in indexes:
                node = self.nodes[index]
                ok, reason = results.get(index, (True, ""))
                if ok:
                    moves.append(("second", node, entries[-1].id))
                    state.second[node] = entries[-1].id
                else:
                    self._failed(index)
                    failure = f"{time.time():.3f} {node} (second purge): {reason}"
            failed = sum(1 for ok, _ in results.values() if not ok)
            self._advance(moves, {"requests": len(results), "failures": failed}, failure)
            did = True
        return did

    def _trim(self, state: LogState) -> None:
        self._trimmed_at = time.monotonic()
        if any(node not in state.delivered for node in self.nodes):
            return
        oldest = min(min(state.delivered[n], state.second.get(n, ZERO)) for n in self.nodes)
        keep = EntryId(max(state.now_ms - KEEP_MS, 0), 0)
        self.log.trim(min(oldest, keep))

    # -- helpers -----------------------------------------------------------------------
    def _tags(self, entries: list[Entry], now_ms: int) -> frozenset[str]:
        """The tags of ``entries`` that a node may still hold pages for."""
        oldest = now_ms - self.horizon_ms
        return frozenset(tag for entry in entries if entry.id.ms >= oldest for tag in entry.tags)

    def _deliver(self, index: int, tags: frozenset[str]) -> tuple[bool, str]:
        return self.delivery.deliver(index, tags)

    def _parallel(self, indexes, call) -> dict[int, tuple[bool, str]]:
        if len(indexes) <= 1:
            return {index: call(index) for index in indexes}
        futures = {index: self._pool.submit(call, index) for index in indexes}
        return {index: future.result() for index, future in futures.items()}

    def _advance(self, moves, counts, failure) -> None:
        if not self.log.advance(self.holder, moves, counts, failure):
            self.leading = False
            log.warning("strata purger %s: lost the lease mid-round; standing by", self.holder)
