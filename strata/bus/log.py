"""The invalidation log and its records, as the purger, the fence and the status pages use them.

The log itself is written by the version store (:mod:`strata.tags.changelog`). Beside it,
in the same Redis, this module keeps per accelerator node (``ip:port``, as
:func:`strata.edge.fence.node_id` names it):

- ``attempted``: the newest entry whose first purge was tried on the node, whatever came of
  it (a request that wrote waits for this, as it waited for its purge tickets);
- ``delivered``: the newest entry up to which every first purge reached the node (the
  fence and the purger's resumption follow this);
- ``second``: the same for the second purge, made :setting:`PURGE_DELAY` later.

Positions only ever move forward, and only the purger that holds the *lease* moves them:
a purger that was stopped and resumes after another took over cannot move them back. The
purgers' counters and the last failure are kept in a hash too, so every status page sees
them whichever purger delivered.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..tags.changelog import IDENTITY_KEY, LOG_KEY, TRIMMED_KEY, ZERO, EntryId, entry_id

__all__ = ["InvalidationLog", "LogState", "Entry", "STAT_NAMES"]

DELIVERED_KEY = "strata:bus:delivered"
ATTEMPTED_KEY = "strata:bus:attempted"
SECOND_KEY = "strata:bus:second"
LEASE_KEY = "strata:bus:lease"
PURGERS_KEY = "strata:bus:purgers"
STATS_KEY = "strata:bus:stats"
NODES_KEY = "strata:bus:nodes"
"""The nodes the delivering purger serves (a set): what a writer's wait covers."""
POSITIONS_OF_KEY = "strata:bus:positions-of"
"""The log identity (with the failover epoch) that the positions were recorded under."""

#: The purgers' counters (``status()["stats"]``).
STAT_NAMES = ("batches", "tags", "requests", "retries", "failures", "full_purges")

#: A purger not seen for this long is no longer listed.
SEEN_FOR = 10.0

_NOW = """
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
"""

# The identity is born with the log: an empty entry starts a log that is missing.
_IDENTITY = """
local identity = redis.call('GET', KEYS[2])
if not identity or redis.call('EXISTS', KEYS[1]) == 0 then
  identity = ARGV[1] .. ':' .. string.format('%.0f', now)
  redis.call('SET', KEYS[2], identity)
  redis.call('XADD', KEYS[1], '*', 't', '')
end
"""

# KEYS: log, identity, delivered, attempted, second, trimmed, positions-of, [failover
# epoch]; ARGV: a token for a new identity. One round trip for everything a purger's
# round decides on.
_STATE = (
    "#!lua\n"
    + _NOW
    + _IDENTITY
    + """
local head, length = false, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then head = info[i + 1]
    elseif info[i] == 'length' then length = info[i + 1] end
  end
end
local deleted = redis.call('GET', KEYS[6])
local epoch = false
if #KEYS > 7 then epoch = redis.call('GET', KEYS[8]) end
return {string.format('%.0f', now), identity, head, deleted, length,
  redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4]),
  redis.call('HGETALL', KEYS[5]), epoch, redis.call('GET', KEYS[7])}
"""
)

_LESS = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms or 0), tonumber(seq or 0)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
"""

# KEYS: lease, delivered, attempted, second, stats; ARGV: holder, then triples of
# (hash index 2..4, node, id), then '--', then pairs (counter, amount), then '--', and an
# optional last failure. Moves positions forward only, and only for the lease's holder.
_ADVANCE = (
    "#!lua\n"
    + _LESS
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local i = 2
while ARGV[i] ~= '--' do
  local hash, node, id = KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]
  local old = redis.call('HGET', hash, node)
  if not old or less(old, id) then redis.call('HSET', hash, node, id) end
  i = i + 3
end
i = i + 1
while ARGV[i] ~= '--' do
  redis.call('HINCRBY', KEYS[5], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if ARGV[i + 1] then redis.call('HSET', KEYS[5], 'last_failure', ARGV[i + 1]) end
return 1
"""
)

# KEYS: lease, purgers; ARGV: holder, ttl ms, a holder known dead (or ''). The holder
# that has or gets the lease; the current one otherwise.
_LEASE = (
    "#!lua\n"
    + _NOW
    + """
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 3600000)
local current = redis.call('GET', KEYS[1])
if not current or current == ARGV[1] or current == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return current
"""
)

# KEYS: log, identity, delivered, trimmed; ARGV: a token for a new identity, node,
# fence_after ms.
# When did ``node`` last miss something older than fence_after: the newest undelivered
# entry that old, the log's loss of entries not delivered to it (trimmed, or the log
# itself lost: a new identity, no record of the node). Returns {now, missed or false}.
_MISSED = (
    "#!lua\n"
    + _NOW
    + _IDENTITY
    + _LESS
    + """
local limit = now - tonumber(ARGV[3])
local created = tonumber(string.match(identity, ':(%d+)$') or 0)
local cursor = redis.call('HGET', KEYS[3], ARGV[2])
local missed = false
if not cursor then
  if created <= limit then missed = created end
  cursor = '0-0'
end
local trimmed = redis.call('GET', KEYS[4])
if trimmed and less(cursor, trimmed) then
  local ms = parse(trimmed)
  if ms <= limit and (not missed or ms > missed) then missed = ms end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local older = redis.call('XREVRANGE', KEYS[1], string.format('%.0f', limit),
    '(' .. cursor, 'COUNT', 1)
  if #older > 0 then
    local ms = parse(older[1][1])
    if not missed or ms > missed then missed = ms end
  end
end
if missed then missed = string.format('%.0f', missed) end
return {string.format('%.0f', now), missed}
"""
)


@dataclass(frozen=True)
class Entry:
    """One logged change: its id and the tags it bumped."""

    id: EntryId
    tags: tuple[str, ...]


@dataclass
class LogState:
    """What a purger's round starts from (:meth:`InvalidationLog.state`)."""

    now_ms: int
    identity: str
    head: EntryId | None
    trimmed: EntryId
    """Entries older than this may be gone before every node had them."""
    length: int
    fresh: bool = False
    """The positions were recorded under another log (or never): all void."""
    delivered: dict[str, EntryId] = field(default_factory=dict)
    attempted: dict[str, EntryId] = field(default_factory=dict)
    second: dict[str, EntryId] = field(default_factory=dict)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat) -> dict[str, EntryId]:
    return {_text(flat[i]): entry_id(flat[i + 1]) for i in range(0, len(flat), 2)}


def _entries(raw) -> list[Entry]:
    found = []
    for ident, fields in raw or ():
        tags = fields.get(b"t", b"") if isinstance(fields, dict) else b""
        found.append(Entry(entry_id(ident), tuple(_text(tags).split())))
    return found


class InvalidationLog:
    """The log in one Redis, with the positions delivered to each accelerator node.

    ``client`` is a ``redis.Redis`` (the version store's own, on the primary);
    ``make_key`` the cache's key function, so that a ``KEY_PREFIX`` applies here too.
    ``epoch_key``: the failover epoch of a Sentinel-managed primary, part of the log's
    identity (a failover may lose entries, like a restart).
    """

    def __init__(self, client, make_key, epoch_key: str | None = None):
        self.client = client
        self.log_key = make_key(LOG_KEY)
        self.identity_key = make_key(IDENTITY_KEY)
        self.delivered_key = make_key(DELIVERED_KEY)
        self.attempted_key = make_key(ATTEMPTED_KEY)
        self.second_key = make_key(SECOND_KEY)
        self.trimmed_key = make_key(TRIMMED_KEY)
        self.positions_of_key = make_key(POSITIONS_OF_KEY)
        self.nodes_key = make_key(NODES_KEY)
        self.lease_key = make_key(LEASE_KEY)
        self.purgers_key = make_key(PURGERS_KEY)
        self.stats_key = make_key(STATS_KEY)
        self.epoch_key = epoch_key
        self._state = client.register_script(_STATE)
        self._advance = client.register_script(_ADVANCE)
        self._lease = client.register_script(_LEASE)
        self._missed = client.register_script(_MISSED)

    def __repr__(self) -> str:
        return f"<InvalidationLog {self.log_key}>"

    # -- the purger's side -------------------------------------------------------------
    def state(self) -> LogState:
        """The log's identity, head, what was trimmed, and every node's positions."""
        keys = [
            self.log_key,
            self.identity_key,
            self.delivered_key,
            self.attempted_key,
            self.second_key,
            self.trimmed_key,
            self.positions_of_key,
        ]
        if self.epoch_key:
            keys.append(self.epoch_key)
        raw = self._state(keys=keys, args=[secrets.token_hex(8)], client=self.client)
        now, identity, head, trimmed, length, delivered, attempted, second, epoch, of = raw
        identity = _text(identity) + (f"/{_text(epoch)}" if epoch else "")
        if (_text(of) if of else None) != identity:
            # Recorded under another log (Redis lost its data, or failed over): they
            # name entries that may never have been delivered. The nodes start over.
            delivered = attempted = second = []
        return LogState(
            now_ms=int(now),
            identity=identity,
            head=entry_id(head) if head else None,
            trimmed=entry_id(trimmed) if trimmed else ZERO,
            length=int(length),
            fresh=(_text(of) if of else None) != identity,
            delivered=_pairs(delivered),
            attempted=_pairs(attempted),
            second=_pairs(second),
        )

    def read(self, after: EntryId, count: int, block_ms: int | None = None) -> list[Entry]:
        """Entries after ``after``, oldest first; waits up to ``block_ms`` for one."""
        raw = self.client.xread({self.log_key: str(after)}, count=count, block=block_ms)
        return _entries(raw[0][1]) if raw else []

    def between(self, after: EntryId, through: EntryId, count: int) -> list[Entry]:
        """Entries after ``after`` up to and including ``through``, oldest first."""
        if through <= after:
            return []
        raw = self.client.xrange(self.log_key, f"({after}", str(through), count=count)
        return _entries(raw)

    def hold_lease(self, holder: str, ttl: float, dead: str = "") -> str:
        """Take or keep the lease for ``ttl`` seconds (or take it over from ``dead``,
        a holder known to have died); returns who holds it now."""
        got = self._lease(
            keys=[self.lease_key, self.purgers_key],
            args=[holder, int(ttl * 1000), dead],
            client=self.client,
        )
        return _text(got)

    def release_lease(self, holder: str) -> None:
        """Give the lease up at once (a purger that stops), if ``holder`` has it."""
        script = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end"
        self.client.eval(script, 1, self.lease_key, holder)
        self.client.zrem(self.purgers_key, holder)

    def advance(
        self,
        holder: str,
        moves: Iterable[tuple[str, str, EntryId]],
        counts: dict[str, int] | None = None,
        failure: str | None = None,
    ) -> bool:
        """Move positions forward (``(which, node, id)``, which is ``delivered``,
        ``attempted`` or ``second``) and add to the counters, if ``holder`` still holds
        the lease. False when it does not (nothing was written)."""
        index = {"delivered": 2, "attempted": 3, "second": 4}
        args: list = [holder]
        for which, node, ident in moves:
            args += [index[which], node, str(ident)]
        args.append("--")
        for name, amount in (counts or {}).items():
            if amount:
                args += [name, amount]
        args.append("--")
        if failure:
            args.append(failure)
        keys = [
            self.lease_key,
            self.delivered_key,
            self.attempted_key,
            self.second_key,
            self.stats_key,
        ]
        return bool(self._advance(keys=keys, args=args, client=self.client))

    def start_positions(self, identity: str) -> None:
        """Void every position and record them from now on under ``identity`` (the
        nodes then start over: :mod:`strata.bus.purger` bans them whole first)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.delivered_key, self.attempted_key, self.second_key)
        pipe.set(self.positions_of_key, identity)
        pipe.execute()

    def serve_nodes(self, nodes: Iterable[str]) -> None:
        """Record the nodes the delivering purger serves, and drop the positions of
        nodes no longer among them (they would hold writers back for nothing)."""
        keep = set(nodes)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.nodes_key)
        if keep:
            pipe.sadd(self.nodes_key, *sorted(keep))
        pipe.execute()
        for key in (self.delivered_key, self.attempted_key, self.second_key):
            gone = [name for name in map(_text, self.client.hkeys(key)) if name not in keep]
            if gone:
                self.client.hdel(key, *gone)

    def trim(self, before: EntryId) -> int:
        """Drop entries older than ``before`` (every node has them); how many went."""
        if before <= ZERO:
            return 0
        return int(self.client.xtrim(self.log_key, minid=str(before), approximate=True))

    # -- the writers' and the fence's side --------------------------------------------
    def progress(self) -> tuple[set[str], dict[str, EntryId], dict[str, EntryId], bool]:
        """``(nodes served, attempted, delivered, a purger holds the lease)``, in one
        round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.smembers(self.nodes_key)
        pipe.hgetall(self.attempted_key)
        pipe.hgetall(self.delivered_key)
        pipe.exists(self.lease_key)
        nodes, attempted, delivered, leased = pipe.execute()
        return (
            set(map(_text, nodes)),
            {_text(k): entry_id(v) for k, v in attempted.items()},
            {_text(k): entry_id(v) for k, v in delivered.items()},
            bool(leased),
        )

    def missed(self, node: str, fence_after: float) -> tuple[int, int | None]:
        """``(now ms, when node last missed a change older than fence_after, or None)``."""
        now, missed = self._missed(
            keys=[self.log_key, self.identity_key, self.delivered_key, self.trimmed_key],
            args=[secrets.token_hex(8), node, int(fence_after * 1000)],
            client=self.client,
        )
        return int(now), (int(missed) if missed else None)

    def status(self) -> dict:
        """Log length, head age, the lease, the purgers seen, per node positions and lag,
        and the purgers' counters: for ``strata status`` and ``/-/timing/``."""
        state = self.state()
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.lease_key)
        pipe.pttl(self.lease_key)
        pipe.zrangebyscore(self.purgers_key, state.now_ms - SEEN_FOR * 1000, "+inf")
        pipe.hgetall(self.stats_key)
        pipe.smembers(self.nodes_key)
        holder, ttl, purgers, stats, served = pipe.execute()
        stats = {_text(k): _text(v) for k, v in stats.items()}
        nodes = {}
        for node in sorted(set(map(_text, served)) | set(state.delivered)):
            delivered = state.delivered.get(node)
            nodes[node] = {
                "delivered": str(delivered) if delivered else None,
                **self._behind(delivered or ZERO, state.now_ms),
            }
        head = state.head
        return {
            "length": state.length,
            "head": str(head) if head else None,
            "head_age": round((state.now_ms - head.ms) / 1000, 3) if head else None,
            "identity": state.identity,
            "lease": {"holder": _text(holder), "ttl": max(ttl, 0) / 1000} if holder else None,
            "purgers": sorted(map(_text, purgers)),
            "nodes": nodes,
            "stats": {
                **{name: int(stats.get(name, 0)) for name in STAT_NAMES},
                "last_failure": stats.get("last_failure"),
            },
        }

    def _behind(self, delivered: EntryId, now_ms: int) -> dict:
        """How many entries a node has not had yet, and the age of the oldest one."""
        pending = self.client.xrange(self.log_key, f"({delivered}", "+", count=1)
        if not pending:
            return {"behind": 0, "lag": None}
        oldest = entry_id(pending[0][0])
        # Counted up to a bound: a node down for long may be a whole log behind.
        behind = len(self.client.xrange(self.log_key, f"({delivered}", "+", count=10_000))
        return {"behind": behind, "lag": round((now_ms - oldest.ms) / 1000, 3)}
