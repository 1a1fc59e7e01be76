"""Fence an accelerator node that missed purges until it is fresh again.

With the invalidation bus (a Redis version store, ``STRATA['BUS']`` on), a node is behind
when the log holds a change older than ``BUS['FENCE_AFTER']`` that the purger has not
delivered to it (:meth:`strata.bus.InvalidationLog.missed`): that survives the death of
any process, and needs none of the records below. They are for the other stores, where
each app process purges by itself:

A node that is down or cut off while a write commits misses that write's purges. The
purger of every app process that failed to reach it retries (:mod:`strata.edge.purge`),
but the load balancer would put the node back into rotation as soon as it answers its
health check again, seconds before the next retry: stale pages in between. So each node
has an *owed* record in Strata's cache (the one the version store uses; Redis, Memcached
and the local caches alike, through Django's cache API):

- a counter per node of the app processes that owe it purges: a process adds one when a
  purge to the node first fails, and takes it back once every purge it owes the node
  was delivered (or can no longer matter, see below);
- the counter expires :func:`horizon` seconds after the last debt was added, so a
  process that dies while owing cannot fence a node for ever: by then every object the
  node held from before the missed purge has left its cache (``EDGE_TTL`` plus the VCL's
  ``beresp.grace``, which stale-if-error can serve from);
- beside it, when a purge to the node last failed. A node whose cache was born after
  that (it restarted, or was banned whole: Varnish keeps nothing across a restart) holds
  nothing older than the missed purges, so its debts are voided at once, whoever owes
  them (a new *generation* of its records starts; see :class:`Fence`). The VCL
  keeps its cache's birth time in an object of its own and sends it with the check
  (``X-Strata-Epoch``); this is what lets ``strata up`` start Varnish after a
  management command failed to purge it, and a crashed node come back without waiting.

The load balancer asks each node whether it is ready (``GET /-/varnish-ready``); the
node passes the question to the app, naming itself in ``X-Strata-Accelerator`` (its own
address and port, as the VCL sees them), and :func:`readiness_response` answers 200
only when nobody owes that node anything. The node answers 200 on its own when the app
cannot be asked at all (every app server down): it must stay in rotation then, to serve
from grace. When the cache server is down the app cannot tell either, and also answers
200 ("unknown"): fencing every node because Redis restarted would send all traffic to
app servers that have no cache. Neither case is made worse than before fencing existed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from functools import lru_cache
from urllib.parse import urlsplit

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse

from ..bus import bus_log
from ..conf import strata_settings

__all__ = [
    "READY_PATH",
    "NODE_HEADER",
    "EPOCH_HEADER",
    "STALE_GRACE",
    "Fence",
    "FenceUnknown",
    "fence",
    "fenced",
    "horizon",
    "node_id",
    "nodes_named",
    "readiness_response",
]

log = logging.getLogger("strata.edge")

#: Where the load balancer checks an accelerator's readiness; the VCL passes it on to the
#: app (the node's liveness stays ``/-/varnish-health``, answered by Varnish alone).
READY_PATH = "/-/varnish-ready"

#: Set by the VCL to the address and port the check arrived on (``local.ip``); a
#: client's value never reaches the app (the VCL overwrites it).
NODE_HEADER = "X-Strata-Accelerator"

#: Set by the VCL: when the node's cache was born (seconds since the epoch, its clock).
EPOCH_HEADER = "X-Strata-Epoch"

#: A cache born less than this many seconds after the last failed purge does not
#: count as newer (the app hosts' and the accelerators' clocks may differ a little).
CLOCK_MARGIN = 0.25

#: Seconds an accelerator keeps an expired object to serve when the app fails
#: (``beresp.grace`` in the VCL: ``1h`` unless the inventory's ``traffic.grace`` says
#: otherwise). A site with a longer grace must raise this too.
STALE_GRACE = 3600

KEY_PREFIX = "strata:edge:fence:"

# Warnings about a cache server that fails, at most this often per process.
_WARN_EVERY = 30.0


class FenceUnknown(Exception):
    """The cache server did not answer: whether a node owes purges is unknown."""


def horizon(edge_ttl: int | None = None) -> int:
    """Seconds after a missed purge until the node cannot hold anything older than it:
    the shared TTL plus the grace stale-if-error serves from."""
    if edge_ttl is None:
        edge_ttl = strata_settings().edge_ttl
    return int(edge_ttl) + STALE_GRACE


@lru_cache(maxsize=256)
def _address(host: str) -> str:
    try:
        address = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError, UnicodeError):
        return host
    # An IPv4/IPv6 sockaddr starts with the address string; only other families
    # (never returned for a host name) start with something else.
    return address if isinstance(address, str) else host


def node_id(url: str) -> str:
    """``ip:port`` of an accelerator's purge URL (a host name is resolved once): the
    name under which its debts are kept."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{_address(parts.hostname or '')}:{port}"


def nodes_named(announced: str, accelerators: tuple[str, ...]) -> list[str]:
    """The ids of the configured ``accelerators`` that a node announcing ``ip:port`` is.

    Exact address and port first. With PROXY protocol the check arrives on the public
    listener while purges go to a second port, so otherwise every accelerator on that
    address counts (one node per host is the usual layout; more only fence together).
    """
    host, _, port = announced.strip().rpartition(":")
    host = host.strip("[]")
    ids = [node_id(url) for url in accelerators]
    if f"{host}:{port}" in ids:
        return [f"{host}:{port}"]
    return [each for each in ids if each.rpartition(":")[0] == host]


class Fence:
    """The owed-purges records, per node id, in one Django cache.

    Per node: a *generation* (kept without expiry, made fresh from the clock when
    missing), and for the current generation a counter of the processes that owe the
    node purges and the time a purge to it last failed (both expire at the horizon).
    Moving to the next generation voids every debt at once: done when the node's cache
    turns out to be younger than the last failure. A process remembers the generation
    it owes in, and takes its share back from that generation only.
    """

    def __init__(self, cache_alias: str = "default"):
        self.cache_alias = cache_alias
        self._warned = 0.0
        self._lock = threading.Lock()

    @property
    def cache(self):
        return caches[self.cache_alias]

    @staticmethod
    def generation_key(node: str) -> str:
        """The cache key of ``node``'s generation."""
        return f"{KEY_PREFIX}{node}:generation"

    @staticmethod
    def key(node: str, generation: int) -> str:
        """The cache key of ``node``'s counter of debtors in ``generation``."""
        return f"{KEY_PREFIX}{node}:{generation}:owed"

    @staticmethod
    def since_key(node: str, generation: int) -> str:
        """The cache key of when a purge to ``node`` last failed, in ``generation``."""
        return f"{KEY_PREFIX}{node}:{generation}:failed"

    def _generation(self, node: str) -> int:
        key = self.generation_key(node)
        found = self.cache.get(key)
        if found is None:
            # Never a number used before for this node (the cache may have lost it).
            self.cache.add(key, int(time.time() * 1000), None)
            found = self.cache.get(key)
        return int(found)

    def owe(self, node: str, seconds: float) -> int | None:
        """One more process owes ``node`` purges, for at most ``seconds`` from now (the
        counter's expiry moves on: it covers the newest debt). The generation it is
        counted in; None when the cache failed (the node then stays in rotation)."""
        timeout = max(int(seconds + 0.999), 1)
        try:
            generation = self._generation(node)
            key = self.key(node, generation)
            self.cache.add(key, 0, timeout)
            try:
                self.cache.incr(key)
            except ValueError:  # expired between the two calls
                self.cache.add(key, 1, timeout)
            # incr keeps the old expiry on Redis and Memcached, not on every backend.
            self.cache.touch(key, timeout)
            self.cache.set(self.since_key(node, generation), time.time(), timeout)
        except Exception as exc:
            self._warn("could not record purges owed to %s", node, exc)
            return None
        return generation

    def extend(self, node: str, generation: int, seconds: float) -> int | None:
        """A process counted in ``generation`` owes ``node`` more: the debt lasts at
        least ``seconds`` longer. Counted anew if that generation was voided or expired
        meanwhile. The generation it is now counted in (None: the cache failed)."""
        timeout = max(int(seconds + 0.999), 1)
        try:
            if self._generation(node) != generation or not self.cache.touch(
                self.key(node, generation), timeout
            ):
                return self.owe(node, seconds)
            self.cache.set(self.since_key(node, generation), time.time(), timeout)
        except Exception as exc:
            self._warn("could not extend purges owed to %s", node, exc)
            return None
        return generation

    def paid(self, node: str, generation: int) -> bool:
        """A process counted in ``generation`` delivered every purge it owed ``node``."""
        key = self.key(node, generation)
        try:
            left = self.cache.decr(key)
        except ValueError:  # voided or expired: nothing left to take back
            return True
        except Exception as exc:
            self._warn("could not record purges delivered to %s", node, exc)
            return False
        if left < 0:
            # Expired and made again by another debt in between: this process's share
            # was gone already; leave the others' count whole.
            with contextlib.suppress(Exception):
                self.cache.incr(key, -left)
        return True

    def owed(self, nodes: list[str], born: float | None = None) -> int:
        """How many processes owe any of ``nodes`` purges (two round trips).

        A node whose cache was ``born`` (a time) after the last failed purge to it owes
        nothing, whoever failed: its debts are voided. Raises :class:`FenceUnknown` when
        the cache fails.
        """
        if not nodes:
            return 0
        try:
            generations = self.cache.get_many([self.generation_key(node) for node in nodes])
            current = {
                node: int(generations[self.generation_key(node)])
                for node in nodes
                if self.generation_key(node) in generations
            }
            keys = [self.key(node, gen) for node, gen in current.items()]
            keys += [self.since_key(node, gen) for node, gen in current.items()]
            found = self.cache.get_many(keys) if keys else {}
            owed = 0
            for node, gen in current.items():
                count = max(int(found.get(self.key(node, gen)) or 0), 0)
                failed = found.get(self.since_key(node, gen))
                if (
                    count
                    and failed is not None
                    and born is not None
                    and born > float(failed) + CLOCK_MARGIN
                ):
                    self.cache.incr(self.generation_key(node))  # void them all
                    log.info("strata: %s restarted after it missed purges: ready", node)
                    continue
                owed += count
        except Exception as exc:
            self._warn("could not read purges owed to %s", ", ".join(nodes), exc)
            raise FenceUnknown(str(exc)) from None
        return owed

    def _warn(self, message: str, node: str, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._warned < _WARN_EVERY:
                return
            self._warned = now
        log.warning("strata: " + message + " (cache %r: %s)", node, self.cache_alias, exc)


def _behind_log(log_, nodes: list[str], born: float | None, conf) -> str:
    """Why the first of ``nodes`` that is behind the invalidation log is not ready ("":
    none is). A node whose cache was born after what it missed holds nothing older."""
    for node in nodes:
        try:
            now_ms, missed = log_.missed(node, conf.bus.fence_after)
        except Exception as exc:
            log.warning("strata: cannot read the invalidation log (%s)", exc)
            raise FenceUnknown(str(exc)) from None
        if missed is None or missed < now_ms - horizon(conf.edge_ttl) * 1000:
            continue
        if born is not None and born * 1000 > missed + CLOCK_MARGIN * 1000:
            continue
        return (
            f"not ready: {node} missed changes of {(now_ms - missed) / 1000:.1f} s ago "
            "that the purger has not delivered\n"
        )
    return ""


_fences: dict[str, Fence] = {}


def fence(cache_alias: str | None = None) -> Fence:
    """The fence in ``cache_alias`` (default: ``STRATA['CACHE']``)."""
    alias = cache_alias or strata_settings().cache_alias
    found = _fences.get(alias)
    if found is None:
        found = _fences.setdefault(alias, Fence(alias))
    return found


def fenced(node: str) -> bool:
    """True while ``node`` (an id from :func:`node_id`) is held out of rotation, as its
    readiness check would answer without knowing when its cache was born (for metrics).
    Raises :class:`FenceUnknown` when the cache does not answer."""
    conf = strata_settings()
    log_ = bus_log(conf.cache_alias)
    if log_ is not None:
        return bool(_behind_log(log_, [node], None, conf))
    return fence(conf.cache_alias).owed([node]) > 0


def readiness_response(request: HttpRequest) -> HttpResponse:
    """The answer to an accelerator's readiness check: 200 unless it owes purges.

    Answered before any other middleware (like the health probe): no session, no host
    check, nothing stored. ``X-Strata-Fence`` says ``clear``, ``owed``, or ``unknown``
    (cache down); the VCL treats an answer without it as "the app cannot be asked".
    """
    conf = strata_settings()
    announced = request.headers.get(NODE_HEADER, "")
    nodes = nodes_named(announced, conf.accelerators) if announced else []
    try:
        born = float(request.headers.get(EPOCH_HEADER, ""))
    except ValueError:
        born = None
    log_ = bus_log(conf.cache_alias)
    try:
        if log_ is not None:
            behind = _behind_log(log_, nodes, born, conf)
            owed = 1 if behind else 0
        else:
            behind, owed = "", fence(conf.cache_alias).owed(nodes, born)
    except FenceUnknown:
        status, word, text = 200, "unknown", "ready: the cache does not answer\n"
    else:
        if owed:
            status, word = 503, "owed"
            text = behind or f"not ready: {owed} app process(es) owe this node purges\n"
        elif nodes:
            status, word, text = 200, "clear", "ready\n"
        else:
            status, word, text = 200, "clear", "ready: not an accelerator of this site\n"
    response = HttpResponse(text.encode(), content_type="text/plain", status=status)
    response["Cache-Control"] = "no-store"
    response["X-Strata-Fence"] = word
    # A fenced node is no server error: not one "Service Unavailable" log line a second.
    response._has_been_logged = True  # type: ignore[attr-defined]  # private Django flag, not in the stubs
    return response
