"""Purge changed tags from every accelerator node, in the background, twice.

Rule 4 of the consistency protocol (``docs/design.md``): pages in Varnish carry their tags
in an ``xkey`` header, and after a write commits, strata purges those tags on every
node. The write must not wait for the network, so :meth:`Purger.purge` only enqueues;
one daemon thread per process sends the purges, batching whatever arrived while it was
busy, retrying a node that failed, and purging every batch a second time ``delay``
seconds later: a page rendered from the old data just before the commit can reach the
accelerator just *after* the first purge, and the second one removes it.

Each purge returns a :class:`PurgeTicket`, resolved when its first purge is over; a
request that wrote waits for its tickets (:mod:`strata.edge.tickets`). Nothing here ever
raises into the caller: a failed purge is logged on ``strata.edge`` and counted in
:attr:`Purger.stats` and in the metrics (``strata_purges_total``,
``strata_purge_duration_seconds``, per node as :func:`strata.edge.fence.node_id` names it).

Purges are hard (``xkey-purge``): a soft purge keeps the old object servable in grace,
which is stale content. ``soft=True`` is for content a site allows to be stale.

A node that missed a purge is fenced (:mod:`strata.edge.fence`): while this process owes
it purges, the node's readiness check fails and the load balancer keeps it out of
rotation, so that it does not serve what it should have dropped before the retry lands.
"""

from __future__ import annotations

import atexit
import enum
import heapq
import http.client
import itertools
import logging
import os
import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from ..conf import strata_settings
from ..metrics.registry import PURGE_SECONDS, PURGES
from . import fence as fencing

__all__ = [
    "Purger",
    "PurgeTicket",
    "purger",
    "reset_purger",
    "MAX_KEY_BYTES",
    "MAX_BACKOFF",
]

log = logging.getLogger("strata.edge")

# Varnish refuses a request header longer than http_req_hdr_len (8 KB by default); half
# of it leaves room for the other headers and for nodes configured tighter.
MAX_KEY_BYTES = 4000

# The first retry of a failed node waits this long; each further one twice as long,
# up to MAX_BACKOFF once the quick retries are spent.
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0

# How long the interpreter's exit waits for queued first purges (a management command
# that wrote must not leave its purges behind, nor hang on a dead node).
EXIT_TIMEOUT = 5.0

# Seconds a debt outlives the retries that could pay it: the counter must not expire
# while this process may still pay it back (and so take back another's share).
FENCE_MARGIN = 60

_PURGED = re.compile(r"urged (\d+)")


class PurgeTicket:
    """The promise of one :meth:`Purger.purge` call: has its first purge gone out?"""

    __slots__ = ("_done", "_ok")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._ok = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the batch's first purge finished on every node, or ``timeout``
        seconds passed; True only if every node purged it (retries go on regardless)."""
        return self._done.wait(timeout) and self._ok

    @property
    def done(self) -> bool:
        """True once every node answered (or failed) the first purge."""
        return self._done.is_set()

    @property
    def succeeded(self) -> bool:
        """True once every node purged it: nobody needs to wait for it any more."""
        return self._done.is_set() and self._ok

    def _resolve(self, ok: bool) -> None:
        self._ok = ok
        self._done.set()


@dataclass(frozen=True)
class _Node:
    url: str
    scheme: str
    host: str
    port: int
    path: str


def _parse_node(url: str) -> _Node:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an accelerator must be an http(s) URL, not {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _Node(url, parts.scheme, parts.hostname, port, parts.path or "/")


class _Batch:
    """The tickets of one batch, resolved when every node's first attempt is over."""

    def __init__(self, tickets: list[PurgeTicket], nodes: int):
        self.tickets = tickets
        self.remaining = nodes
        self.ok = True

    def node_done(self, ok: bool) -> None:
        self.ok = self.ok and ok
        self.remaining -= 1
        if self.remaining == 0:
            for ticket in self.tickets:
                ticket._resolve(self.ok)


@dataclass
class _Job:
    """Purge ``hard`` and ``soft`` keys on one node (one or more requests)."""

    node: int
    hard: frozenset[str]
    soft: frozenset[str]
    first: bool  # a batch's first purge: its success schedules the second one
    attempt: int = 0
    owing: bool = False  # failed once: counted in the node's fence until it settles
    since: float = field(default_factory=time.monotonic)  # when the tags changed
    batch: _Batch | None = field(default=None, repr=False)


class _Result(enum.Enum):
    OK = "ok"
    TRANSIENT = "transient"  # no answer, or 5xx: worth retrying
    REFUSED = "refused"  # 4xx (wrong secret, not in the ACL): retrying will not help


def _keys(tags: Iterable[str] | str) -> frozenset[str]:
    if isinstance(tags, str):
        tags = (tags,)
    # xkey splits its header on whitespace: a tag with a space would purge its words
    # anyway, and a line break would be a header injection.
    return frozenset(word for tag in tags for word in str(tag).split())


def _chunks(keys: Iterable[str], limit: int = MAX_KEY_BYTES) -> list[str]:
    """Space-separated runs of ``keys`` of at most ``limit`` bytes (a longer key alone)."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for key in sorted(keys):
        extra = len(key.encode()) + (1 if current else 0)
        if current and size + extra > limit:
            chunks.append(" ".join(current))
            current, size, extra = [], 0, len(key.encode())
        current.append(key)
        size += extra
    if current:
        chunks.append(" ".join(current))
    return chunks


def _describe(keys: frozenset[str]) -> str:
    shown = sorted(keys)[:5]
    more = f" and {len(keys) - len(shown)} more" if len(keys) > len(shown) else ""
    return ", ".join(shown) + more


_STAT_NAMES = (
    "requests",
    "purged",
    "failures",
    "refused",
    "retries",
    "given_up",
    "objects",
    "second_purges",
)

_purgers: weakref.WeakSet[Purger] = weakref.WeakSet()


class Purger:
    """Sends tag purges to accelerator nodes from one background thread per process."""

    def __init__(
        self,
        nodes: Sequence[str],
        secret: str,
        delay: float,
        retries: int = 5,
        timeout: float = 2.0,
        keep_trying: float = 0.0,
        fence: fencing.Fence | None = None,
    ):
        self.nodes: tuple[_Node, ...] = tuple(_parse_node(url) for url in nodes)
        self.secret = secret
        self.delay = delay
        self.retries = retries
        self.timeout = timeout
        #: After ``retries`` quick retries, a node that stays unreachable is tried every
        #: ``MAX_BACKOFF`` seconds until this many seconds after the write: by then every
        #: page it could hold under those tags has expired, so the purge is moot.
        self.keep_trying = keep_trying
        #: Where this process records the purges it owes each node (None: nowhere, the
        #: nodes are never fenced). A debt lasts ``keep_trying`` + FENCE_MARGIN seconds
        #: at most, so ``keep_trying`` should cover the nodes' TTL and grace.
        self.fence = fence
        self._node_ids = [fencing.node_id(node.url) for node in self.nodes] if fence else []
        #: When the last purge failed, where and why (None: none has failed).
        self.last_failure: dict | None = None
        #: ``requests`` sent, ``purged`` (answered 200), ``failures`` (no answer or not
        #: 200), ``refused`` (4xx, not retried), ``retries``, ``given_up``, ``objects``
        #: (as the nodes reported), ``second_purges`` (second purges that succeeded).
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._metrics: dict[int, tuple] = {}  # node index -> (sent, retried, failed, seconds)
        self._closing = False
        self._init_worker_state()
        _purgers.add(self)
        atexit.register(self._close_at_exit)

    def _init_worker_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: list[tuple[frozenset[str], bool, PurgeTicket]] = []
        self._thread: threading.Thread | None = None
        # Only the worker touches these two.
        self._timers: list[tuple[float, int, _Job]] = []
        self._connections: dict[int, http.client.HTTPConnection] = {}
        self._sequence = itertools.count()
        # Per node: how many of this process's jobs failed and are not settled yet,
        # whether the fence counts this process (the cache may have failed), and whether
        # a job was dropped undelivered (the share then expires, it is never taken back).
        self._owing: Counter[int] = Counter()
        self._shares: dict[int, int] = {}  # node -> the generation it is counted in
        self._dropped: set[int] = set()

    def _reset_after_fork(self) -> None:
        # The parent's thread, queue and sockets stay the parent's: the child starts
        # afresh (and lazily) with its own worker.
        self._init_worker_state()

    def __repr__(self) -> str:
        return f"<Purger {', '.join(node.url for node in self.nodes)}>"

    # -- the caller's side -------------------------------------------------------------
    def purge(self, tags: Iterable[str], soft: bool = False) -> PurgeTicket:
        """Enqueue a purge of ``tags`` on every node and return at once."""
        ticket = PurgeTicket()
        keys = _keys(tags)
        if not keys or not self.nodes:
            ticket._resolve(True)
            return ticket
        if self._pid != os.getpid():
            # A fork that Python's at-fork hooks did not see (a C-level fork).
            self._reset_after_fork()
        problem: str | None
        with self._lock:
            if self._closing:
                problem = "the purger is closed"
            else:
                self._queue.append((keys, soft, ticket))
                problem = self._ensure_worker()
                if problem:
                    self._queue.pop()
                else:
                    self._wake.notify()
        if problem:
            log.error("strata: purge of %s not sent: %s", _describe(keys), problem)
            ticket._resolve(False)
        return ticket

    def status(self) -> dict:
        """Counters, purges waiting for a retry, and the last failure (for status pages)."""
        timers = list(self._timers)  # a copy: the worker thread owns the heap
        return {
            "nodes": [node.url for node in self.nodes],
            **{name: self.stats[name] for name in _STAT_NAMES},
            "waiting_retry": sum(1 for _, _, job in timers if job.attempt > 0),
            "last_failure": self.last_failure,
        }

    def _ensure_worker(self) -> str | None:
        if self._thread is not None and self._thread.is_alive():
            return None
        thread = threading.Thread(target=self._run, name="strata-purger", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # e.g. at interpreter shutdown
            return str(exc)
        self._thread = thread
        return None

    def close(self, timeout: float | None = EXIT_TIMEOUT) -> None:
        """Send what is queued (first purges only), then stop the worker; waits at most
        ``timeout`` seconds. Later purges are refused."""
        atexit.unregister(self._close_at_exit)
        with self._lock:
            self._closing = True
            self._wake.notify()
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _close_at_exit(self) -> None:
        self.close(EXIT_TIMEOUT)

    # -- the worker --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    wait = self._seconds_to_next_timer()
                    if wait is not None and wait <= 0:
                        break
                    self._wake.wait(wait)
                queued, self._queue = self._queue, []
                closing = self._closing
            try:
                jobs = self._first_jobs(queued)
                if not closing:
                    jobs += self._due_jobs()
                self._send(jobs, final=closing)
            except Exception:
                log.exception("strata: the purge worker failed")
            if closing:
                self._drop_connections()
                return

    def _seconds_to_next_timer(self) -> float | None:
        return self._timers[0][0] - time.monotonic() if self._timers else None

    def _first_jobs(self, queued: list[tuple[frozenset[str], bool, PurgeTicket]]) -> list[_Job]:
        if not queued:
            return []
        hard: set[str] = set()
        soft: set[str] = set()
        for keys, is_soft, _ in queued:
            (soft if is_soft else hard).update(keys)
        batch = _Batch([ticket for _, _, ticket in queued], len(self.nodes))
        hard_keys, soft_keys = frozenset(hard), frozenset(soft - hard)
        return [
            _Job(index, hard_keys, soft_keys, first=True, batch=batch)
            for index in range(len(self.nodes))
        ]

    def _due_jobs(self) -> list[_Job]:
        now = time.monotonic()
        jobs = []
        while self._timers and self._timers[0][0] <= now:
            jobs.append(heapq.heappop(self._timers)[2])
        return jobs

    def _schedule(self, after: float, job: _Job) -> None:
        heapq.heappush(self._timers, (time.monotonic() + after, next(self._sequence), job))

    def _send(self, jobs: list[_Job], final: bool) -> None:
        """One round: every node gets the union of its jobs' keys, then each job settles.

        The nodes are purged in parallel, so a node that is down or slow (up to
        ``timeout``) does not hold back the purges of the others.
        """
        if not jobs:
            return
        by_node: dict[int, list[_Job]] = {}
        for job in jobs:
            by_node.setdefault(job.node, []).append(job)
        keys = {}
        for index, node_jobs in by_node.items():
            hard = frozenset().union(*(job.hard for job in node_jobs))
            keys[index] = (hard, frozenset().union(*(job.soft for job in node_jobs)) - hard)
        if len(keys) == 1:
            results = {index: self._purge_safely(index, *both) for index, both in keys.items()}
        else:
            with ThreadPoolExecutor(min(len(keys), 16), "strata-purge-node") as pool:
                futures = {i: pool.submit(self._purge_safely, i, *both) for i, both in keys.items()}
                results = {index: future.result() for index, future in futures.items()}
        for index, node_jobs in by_node.items():
            for job in node_jobs:
                self._settle(job, *results[index], final)
        self._record_debts(i for i, (result, _) in results.items() if result is _Result.TRANSIENT)

    def _purge_safely(
        self, index: int, hard: frozenset[str], soft: frozenset[str]
    ) -> tuple[_Result, str]:
        try:
            return self._purge_node(index, hard, soft)
        except Exception as exc:  # a bug must not leave tickets unresolved
            log.exception("strata: purge on %s failed", self.nodes[index].url)
            return _Result.REFUSED, repr(exc)

    def _settle(self, job: _Job, result: _Result, reason: str, final: bool) -> None:
        # The ticket resolves last: whoever waits on it then sees the counters and logs.
        try:
            self._follow_up(job, result, reason, final)
        finally:
            if job.batch is not None and job.attempt == 0:
                job.batch.node_done(result is _Result.OK)

    def _follow_up(self, job: _Job, result: _Result, reason: str, final: bool) -> None:
        """After one delivery: pay a debt, plan the second purge, retry, or give up."""
        node = self.nodes[job.node].url
        keys = job.hard | job.soft
        what = "purge" if job.first else "second purge"
        if result is _Result.OK:
            if job.owing:
                self._settle_debt(job.node, delivered=True)
            if job.first and not final:
                second = replace(job, first=False, attempt=0, owing=False, batch=None)
                self._schedule(self.delay, second)
            elif not job.first:
                self.stats["second_purges"] += 1
            return
        if result is _Result.TRANSIENT and not job.owing:
            # A refused purge (4xx) is a configuration mistake, logged as such: fencing
            # for it would take every node out of rotation and keep it out.
            job = replace(job, owing=self._owe(job.node))
        self.last_failure = {"time": time.time(), "node": node, "reason": reason}
        quick = job.attempt < self.retries
        if (
            result is _Result.TRANSIENT
            and not final
            and (quick or time.monotonic() - job.since < self.keep_trying)
        ):
            backoff = min(FIRST_BACKOFF * 2**job.attempt, MAX_BACKOFF)
            self.stats["retries"] += 1
            self._metric(job.node)[1].inc()
            if quick or job.attempt % 12 == 0:  # about once a minute after the quick ones
                log.warning(
                    "strata: %s of %s on %s failed (%s); retry %d in %.1f s",
                    what,
                    _describe(keys),
                    node,
                    reason,
                    job.attempt + 1,
                    backoff,
                )
            self._schedule(backoff, replace(job, attempt=job.attempt + 1, batch=None))
            return
        if job.owing:
            # Given up once the node cannot hold anything older than the write: paid.
            # Refused or dropped at exit: never delivered, so the debt just expires.
            self._settle_debt(job.node, delivered=not final and result is _Result.TRANSIENT)
        self.stats["given_up"] += 1
        log.error(
            "strata: %s of %s on %s failed (%s); given up after %d attempts: "
            "pages with these tags may be stale on that node",
            what,
            _describe(keys),
            node,
            reason,
            job.attempt + 1,
        )

    def _owe(self, index: int) -> bool:
        """Count a failed job against its node (recorded in the fence once the round is
        over, by :meth:`_record_debts`). True when the node can be fenced at all."""
        if self.fence is None:
            return False
        self._owing[index] += 1
        return True

    def _record_debts(self, failed: Iterable[int]) -> None:
        """After a round: this process owes each ``failed`` node purges. The first debt
        adds it to the node's debtors; each further failed round records the time and
        pushes the expiry on (or counts it anew, if the node's debts were voided)."""
        if self.fence is None:
            return
        seconds = self.keep_trying + FENCE_MARGIN
        for index in failed:
            if not self._owing[index]:
                continue
            node = self._node_ids[index]
            generation = self._shares.get(index)
            if generation is None:
                generation = self.fence.owe(node, seconds)
            else:
                generation = self.fence.extend(node, generation, seconds) or generation
            if generation is not None:
                self._shares[index] = generation

    def _settle_debt(self, index: int, delivered: bool) -> None:
        """A failed job settled: once none is left, this process owes the node nothing
        (and takes its share back, unless a purge was dropped undelivered: then the share
        stays until it expires)."""
        if not delivered:
            self._dropped.add(index)
        self._owing[index] -= 1
        if self._owing[index] > 0:
            return
        del self._owing[index]
        generation = self._shares.pop(index, None)
        if index in self._dropped:
            self._dropped.discard(index)
            if generation is None and self.fence is not None:  # e.g. failed at exit
                self.fence.owe(self._node_ids[index], self.keep_trying + FENCE_MARGIN)
        elif generation is not None and self.fence is not None:  # shares imply a fence
            self.fence.paid(self._node_ids[index], generation)

    def deliver(self, index: int, tags: Iterable[str]) -> tuple[bool, str]:
        """Hard-purge ``tags`` on node ``index`` now, in the calling thread (no retry, no
        second purge: :mod:`strata.bus.purger` schedules its own). ``(ok, what happened)``."""
        result, reason = self._purge_safely(index, _keys(tags), frozenset())
        return result is _Result.OK, reason

    def purge_everything(self, index: int) -> tuple[bool, str]:
        """Empty node ``index``'s cache (a ban of every object), in the calling thread:
        for a node that missed changes nobody can name any more."""
        try:
            result, reason, _ = self._request(index, "X-Strata-Purge-All", "1")
        except Exception as exc:  # a bug must not stop the purger
            log.exception("strata: full purge on %s failed", self.nodes[index].url)
            return False, repr(exc)
        return result is _Result.OK, reason

    def _purge_node(
        self, index: int, hard: frozenset[str], soft: frozenset[str]
    ) -> tuple[_Result, str]:
        purged = 0
        for header, keys in (("xkey-purge", hard), ("xkey-softpurge", soft)):
            for chunk in _chunks(keys):
                result, reason, count = self._request(index, header, chunk)
                if result is not _Result.OK:
                    return result, reason
                purged += count
        return _Result.OK, f"{purged} objects"

    def _count(self, name: str, amount: int = 1) -> None:
        with self._stats_lock:  # node threads of one round count at once
            self.stats[name] += amount

    def _metric(self, index: int) -> tuple:
        """The node's metric children: sent, retried and failed purges, their time."""
        found = self._metrics.get(index)
        if found is None:
            node = fencing.node_id(self.nodes[index].url)  # the bus and the fence say so too
            found = self._metrics[index] = (
                *(PURGES.labels(node, result) for result in ("sent", "retried", "failed")),
                PURGE_SECONDS.labels(node),
            )
        return found

    def _request(self, index: int, header: str, value: str) -> tuple[_Result, str, int]:
        sent, _, failed, seconds = self._metric(index)
        started = time.perf_counter()
        try:
            answer = self._request_once(index, header, value)
        finally:
            sent.inc()
            seconds.observe(time.perf_counter() - started)
        if answer[0] is not _Result.OK:
            failed.inc()
        return answer

    def _request_once(self, index: int, header: str, value: str) -> tuple[_Result, str, int]:
        self._count("requests")
        node = self.nodes[index]
        headers = {header: value, "X-Purge-Secret": self.secret}
        for fresh_attempt in (False, True):
            reused = index in self._connections
            connection = self._connection(index)
            try:
                connection.request("PURGE", node.path, headers=headers)
                response = connection.getresponse()
                response.read()
            except ConnectionError as exc:
                self._drop_connection(index)
                if reused and not fresh_attempt:
                    # The node closed the idle keep-alive connection (Varnish's
                    # timeout_idle is 5 s): that is no failure, send it again.
                    continue
                return self._failed(_Result.TRANSIENT, f"{type(exc).__name__}: {exc}")
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection(index)
                return self._failed(_Result.TRANSIENT, f"{type(exc).__name__}: {exc}")
            except ValueError as exc:  # a key http.client refuses to send
                self._drop_connection(index)
                return self._failed(_Result.REFUSED, str(exc))
            break
        status = f"{response.status} {response.reason}"
        if response.status == 200:
            self._count("purged")
            found = _PURGED.search(response.reason or "")
            count = int(found.group(1)) if found else 0
            self._count("objects", count)
            return _Result.OK, status, count
        if response.status >= 500:
            return self._failed(_Result.TRANSIENT, status)
        self._count("refused")
        return self._failed(_Result.REFUSED, status)

    def _failed(self, result: _Result, reason: str) -> tuple[_Result, str, int]:
        self._count("failures")
        return result, reason, 0

    def _connection(self, index: int) -> http.client.HTTPConnection:
        connection = self._connections.get(index)
        if connection is None:
            node = self.nodes[index]
            cls = (
                http.client.HTTPSConnection
                if node.scheme == "https"
                else http.client.HTTPConnection
            )
            connection = cls(node.host, node.port, timeout=self.timeout)
            self._connections[index] = connection
        return connection

    def _drop_connection(self, index: int) -> None:
        connection = self._connections.pop(index, None)
        if connection is not None:
            connection.close()

    def _drop_connections(self) -> None:
        for index in list(self._connections):
            self._drop_connection(index)


# -- the process's purger --------------------------------------------------------------

_cached: tuple[tuple, Purger] | None = None
_cached_lock = threading.Lock()


def purger() -> Purger | None:
    """This process's purger for the configured accelerators (None when there are none)."""
    global _cached
    conf = strata_settings()
    if not conf.accelerators:
        return None
    key = (conf.accelerators, conf.purge_secret, conf.purge_delay, conf.edge_ttl)
    cached = _cached
    if cached is not None and cached[0] == key:
        return cached[1]
    with _cached_lock:
        cached = _cached
        if cached is not None and cached[0] == key:
            return cached[1]
        # Retry a node until every page it may hold under the tags has left its cache:
        # the shared TTL, plus the grace Varnish serves an expired page from when the app
        # fails (stale-if-error). Until then the node is fenced (strata.edge.fence).
        fresh = Purger(
            conf.accelerators,
            conf.purge_secret,
            conf.purge_delay,
            keep_trying=fencing.horizon(conf.edge_ttl),
            fence=fencing.fence(conf.cache_alias),
        )
        _cached = (key, fresh)
    if cached is not None:
        cached[1].close(timeout=0)  # the settings changed: it flushes in the background
    return fresh


def reset_purger(timeout: float = 1.0) -> None:
    """Forget the cached purger, stopping its worker (tests; Django's setting_changed)."""
    global _cached
    with _cached_lock:
        cached, _cached = _cached, None
    if cached is not None:
        cached[1].close(timeout)


def _after_fork_in_child() -> None:
    global _cached_lock
    _cached_lock = threading.Lock()
    for each in list(_purgers):
        each._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
