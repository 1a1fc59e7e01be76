"""The purger: reads the invalidation log and purges every accelerator, at least once.

One purger delivers at a time: it holds a lease in Redis (renewed every round), and any
number of others stand by to take over when it expires, or at once when its holder is a
process of this host that died. Each round:

1. **Resume or start over.** A node without a delivered position (never served, or the
   log's records were lost with Redis's data), or whose position is older than what the
   log trimmed, cannot be told what it missed: its whole cache is banned
   (``X-Strata-Purge-All``), and it resumes from the head read before the ban.
2. **First purges.** The entries after each node's delivered position, their tags merged
   into ``xkey-purge`` requests, sent to every node in parallel (one job per node: a node
   that hangs holds back no other). A node that answers moves its ``delivered``
   position; every node tried moves ``attempted`` (what a request that wrote waits for). A node that fails is retried with a growing backoff, and is fenced
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
from concurrent import futures
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

#: Seconds a round waits for the requests it started (a node answers within a few ms).
JOB_WAIT = 0.05

#: A node whose request has hung this long counts as tried (a writer waits no longer).
STALLED = 0.1


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
        self.took_over = False
        self._renew_at = 0.0
        self._identity: str | None = None
        self._not_before: dict[int, float] = {}
        self._failures: Counter[int] = Counter()
        self._trimmed_at = 0.0
        self._pool = ThreadPoolExecutor(max(1, min(len(self.nodes), 16)), "strata-bus-node")
        #: Per node index, the request in flight: (future, done callback, when started).
        self._jobs: dict[int, tuple] = {}
        #: Counters not written yet (they go with the next positions).
        self._counts: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<BusPurger {self.holder} → {', '.join(self.nodes)}>"

    # -- running -----------------------------------------------------------------------
    def run(self, stop: threading.Event, block: float = 0.2) -> None:
        """Deliver until ``stop`` is set; a failing Redis is waited out, never fatal.

        The first line it logs comes after its first round (a node new to the log was
        emptied by then): ``strata up`` takes it as the purger's readiness."""
        quiet_until = 0.0
        announced = False
        try:
            while not stop.is_set():
                try:
                    if self.lead():
                        self.round(block)
                    if self.took_over or not announced:
                        self.took_over = False
                        role = "delivering" if self.leading else "standing by"
                        log.info(
                            "strata purger %s: %s (%s)", self.holder, role, ", ".join(self.nodes)
                        )
                        announced = True
                    if not self.leading:
                        stop.wait(LEASE_TTL / 4)
                except Exception as exc:  # Redis down or restarting: try again shortly
                    self.leading = False
                    if time.monotonic() >= quiet_until:
                        log.warning("strata purger %s: %s; retrying", self.holder, exc)
                        quiet_until = time.monotonic() + 10
                        announced = True
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

    def deliver_once(self, timeout: float = 30.0) -> None:
        """Deliver what the log holds now (takes the lease, even from a live holder's
        expired one) and return once every node was tried: for tests and
        ``strata_purger --once``."""
        deadline = time.monotonic() + LEASE_TTL * 2
        while not self.lead():
            if time.monotonic() > deadline:
                raise RuntimeError("another purger holds the lease")
            time.sleep(0.1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.lead()
            if not self.round(block=None) and not self._jobs:
                break

    def lead(self) -> bool:
        """Hold (or renew) the lease; True while this purger is the one delivering
        (``took_over`` is set when it has just taken the lease)."""
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
                self.log.serve_nodes(self.nodes)
                self.took_over = True
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
        did = self._collect(state)
        self._mark_stalled_attempted(state)
        did = self._start_over(state) or did
        waiting = did or bool(self._jobs)
        did = self._first_purges(state, None if waiting else block) or did
        did = self._second_purges(state) or did
        did = self._collect(state, JOB_WAIT) or did
        if time.monotonic() - self._trimmed_at > 5:
            self._trim(state)
        return did

    # Each node's requests run in a thread of the pool, one job per node at a time. A
    # round waits a moment for the jobs it started (a node answers in a millisecond or
    # two), never for a node that hangs: the others' positions move on without it.
    def _idle(self, index: int) -> bool:
        return index not in self._jobs and time.monotonic() >= self._not_before.get(index, 0.0)

    def _start(self, index: int, call, done) -> None:
        """Run ``call(index)`` (→ ``(ok, reason)``) in the pool; ``done(ok, reason)``
        runs in this thread once it is over and returns ``(moves, counts, failure)``."""
        self._jobs[index] = (self._pool.submit(call, index), done, time.monotonic())

    def _collect(self, state: LogState, wait: float = 0.0) -> bool:
        """Settle the jobs that are over (waiting up to ``wait`` for those of nodes that
        answered their last request), in one write of the positions."""
        if not self._jobs:
            return False
        quick = [job[0] for i, job in self._jobs.items() if not self._failures[i]]
        if wait and quick:
            futures.wait(quick, timeout=wait)
        moves: list = []
        counts, self._counts = self._counts, Counter()
        failure = None
        for index, (future, done, _) in list(self._jobs.items()):
            if not future.done():
                continue
            del self._jobs[index]
            ok, reason = future.result()
            if ok:
                self._failures.pop(index, None)
                self._not_before.pop(index, None)
            else:
                self._failures[index] += 1
                backoff = min(_FIRST_BACKOFF * 2 ** (self._failures[index] - 1), MAX_BACKOFF)
                self._not_before[index] = time.monotonic() + backoff
                counts["failures"] += 1
                counts["retries"] += self._failures[index] > 1
                failure = f"{time.time():.3f} {self.nodes[index]}: {reason}"
            counts["requests"] += 1
            node_moves, node_counts = done(ok, reason)
            moves += node_moves
            counts.update(node_counts)
        if not moves and not counts:
            return False
        self._advance(moves, dict(counts), failure)
        for which, node, ident in moves:
            getattr(state, which)[node] = max(getattr(state, which).get(node, ZERO), ident)
        return True

    def _mark_stalled_attempted(self, state: LogState) -> None:
        """Nodes waiting out a backoff, or whose request hangs, count as tried up to the
        head: a request that wrote does not wait for a node that is known to fail (the
        fence holds it out)."""
        head = state.head
        if head is None:
            return
        now = time.monotonic()
        stalled = {i for i, (_, _, started) in self._jobs.items() if now - started > STALLED}
        stalled |= {i for i, until in self._not_before.items() if now < until}
        moves = [
            ("attempted", self.nodes[index], head)
            for index in stalled
            if state.attempted.get(self.nodes[index], ZERO) < head
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
            if self._idle(index) and (node in new or state.delivered[node] < state.trimmed)
        ]
        head = state.head or ZERO
        # The second purge still covers the last PURGE_DELAY before the ban (a page
        # rendered from old data may arrive after it).
        second = min(EntryId(max(state.now_ms - self.delay_ms - 1000, 0), 0), head)
        for index in lost:
            node = self.nodes[index]

            def banned(ok: bool, reason: str, node=node, known=node not in new):
                if not ok:
                    log.warning("strata purger: full purge of %s failed (%s)", node, reason)
                    return [("attempted", node, head)], {}
                if known:
                    log.warning(
                        "strata purger: %s missed changes the log no longer holds: "
                        "banned its whole cache",
                        node,
                    )
                else:  # first served (or Redis lost the records): routine
                    log.info("strata purger: %s is new to the log: emptied its cache", node)
                moves = [("delivered", node, head), ("attempted", node, head)]
                if state.second.get(node, ZERO) < second:
                    moves.append(("second", node, second))
                return moves, {"full_purges": 1}

            self._start(index, self.delivery.purge_everything, banned)
        return bool(lost)

    def _first_purges(self, state: LogState, block: float | None) -> bool:
        idle = [i for i, node in enumerate(self.nodes) if self._idle(i) and node in state.delivered]
        if not idle:
            if block:
                time.sleep(min(block, 0.02))
            return False
        start = min(state.delivered[self.nodes[i]] for i in idle)
        caught_up = state.head is None or start >= state.head
        # Blocking also paces the second purges: they ripen while it waits, at most
        # ``block`` late.
        block_ms = int(block * 1000) if block and caught_up else None
        entries = self.log.read(start, BATCH, block_ms)
        if not entries:
            return False
        if caught_up:
            state.now_ms = max(state.now_ms, entries[-1].id.ms)
        started = False
        batch_tags: set[str] = set()
        for index in idle:
            node = self.nodes[index]
            mine = [entry for entry in entries if entry.id > state.delivered[node]]
            if not mine:
                continue
            last, tags = mine[-1].id, self._tags(mine, state.now_ms)

            def delivered(ok: bool, reason: str, node=node, last=last, tags=tags):
                if not ok:
                    log.warning("strata purger: purge on %s failed (%s); retrying", node, reason)
                    return [("attempted", node, last)], {}
                return [("attempted", node, last), ("delivered", node, last)], {}

            self._start(index, functools.partial(self._deliver, tags=tags), delivered)
            started = True
            batch_tags |= tags
        if started:  # one batch of the log, however many nodes it goes to
            self._counts.update({"batches": 1, "tags": len(batch_tags)})
        return started

    def _second_purges(self, state: LogState) -> bool:
        ripe = EntryId(state.now_ms - self.delay_ms, 2**63 - 1)
        groups: dict[tuple[EntryId, EntryId], list[int]] = {}
        for index, node in enumerate(self.nodes):
            if not self._idle(index) or node not in state.delivered:
                continue
            after = state.second.get(node, ZERO)
            through = min(state.delivered[node], ripe)
            if after < through:
                groups.setdefault((after, through), []).append(index)
        started = False
        for (after, through), indexes in groups.items():
            entries = self.log.between(after, through, BATCH)
            if not entries:
                continue
            last, tags = entries[-1].id, self._tags(entries, state.now_ms)
            for index in indexes:
                node = self.nodes[index]

                def purged_again(ok: bool, reason: str, node=node, last=last):
                    return ([("second", node, last)] if ok else []), {}

                self._start(index, functools.partial(self._deliver, tags=tags), purged_again)
                started = True
        return started

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

    def _advance(self, moves, counts, failure) -> None:
        if not self.log.advance(self.holder, moves, counts, failure):
            self.leading = False
            log.warning("strata purger %s: lost the lease mid-round; standing by", self.holder)
