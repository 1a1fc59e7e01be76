"""The log of version changes that a Redis version store keeps beside the versions.

Every bump writes the new versions and appends the bumped tags to a Redis Stream in one
script: one round trip, and no version ever changes without its entry (``docs/design.md``,
"Delivery does not depend on the writer"). :mod:`strata.bus` reads the log and delivers it
to the accelerators; a writer needs nothing but the cache settings.

Entry ids are Redis's own (``<ms>-<seq>``, from the server's clock): ordered, and telling
when each change was made. Beside the log, an *identity* (``<token>:<ms created>``) is
created by the first script that finds it missing: the identity is born with the log (whoever
finds either missing makes both anew), so when Redis loses the log (a restart without
its data, a flush, an eviction), a new identity tells the purger that the positions it
recorded name entries that may never have been delivered.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "LOG_KEY",
    "IDENTITY_KEY",
    "TRIMMED_KEY",
    "APPEND",
    "EntryId",
    "entry_id",
]

LOG_KEY = "strata:bus:log"
"""Cache key (before ``make_key``) of the stream of bumped tags."""

IDENTITY_KEY = "strata:bus:identity"
"""Cache key of ``<token>:<ms>``: made when the log begins (again, after a data loss)."""

TRIMMED_KEY = "strata:bus:trimmed"
"""Cache key of the oldest entry left after the log's bound trimmed it: a node whose
position is older may have missed what went (Redis's own ``max-deleted-entry-id`` is not
moved by trimming, only by ``XDEL``)."""

# KEYS: the log, the identity, the trimmed mark, then the version keys; ARGV: the log's
# bound, a token for a new identity, the tags (space-separated), then the serialized new
# versions. Flagged as writing: a replica refuses it.
APPEND = """#!lua
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[2], ARGV[2] .. ':' ..
    string.format('%.0f', now[1] * 1000 + math.floor(now[2] / 1000)))
end
for i = 4, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i])
end
local before = redis.call('XLEN', KEYS[1])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 't', ARGV[3])
if redis.call('XLEN', KEYS[1]) <= before then
  redis.call('SET', KEYS[3], redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1][1])
end
return id
"""


class EntryId(NamedTuple):
    """A stream entry id, ordered as Redis orders them."""

    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


ZERO = EntryId(0, 0)


def entry_id(value: str | bytes | None) -> EntryId:
    """Parse ``<ms>-<seq>`` (bytes or str); None or garbage is :data:`ZERO`."""
    if value is None:
        return ZERO
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    try:
        return EntryId(int(ms), int(seq or 0))
    except ValueError:
        return ZERO
