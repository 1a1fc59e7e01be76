"""The failover epoch: a value that changes whenever the Redis primary may have lost writes.

A replica that Sentinel promotes gets a new replication id; a primary that restarts gets
a new run id. Either may have lost writes it had acknowledged, tag-version bumps among
them (a bump not yet replicated, or written after the last save). Every new connection
to the primary runs :data:`SCRIPT` before it serves anything: when the primary's identity
(replication id and run id) is not the one stored beside the epoch, it writes a new epoch.
The version store reads the epoch in the same MGET as the versions and stamps every
version with it (:mod:`strata.tags.failover`), so nothing stored before a failover or a
restart can match after it.
"""

from __future__ import annotations

import secrets

__all__ = ["EPOCH_KEY", "IDENTITY_KEY", "SCRIPT", "new_epoch", "script_args"]

EPOCH_KEY = "strata:epoch"
"""Cache key (before ``make_key``) of the current epoch: 12 digits, never reused."""

IDENTITY_KEY = "strata:epoch:primary"
"""Cache key of ``<master_replid>:<run_id>`` of the primary that wrote the epoch."""

# A script flagged ``#!lua`` (may write) is refused by a read-only replica (READONLY):
# a connection never settles on a replica, even one that Sentinel still names.
SCRIPT = """#!lua
local replication = redis.call('INFO', 'replication')
if string.match(replication, 'role:(%a+)') ~= 'master' then
  return redis.error_reply('READONLY strata: this server is not the primary')
end
local server = redis.call('INFO', 'server')
local identity = string.match(replication, 'master_replid:(%x+)') .. ':' ..
  string.match(server, 'run_id:(%x+)')
local epoch = redis.call('GET', KEYS[1])
if epoch and redis.call('GET', KEYS[2]) == identity then
  return epoch
end
local new = ARGV[1]
if new == epoch then
  new = ARGV[2]
end
redis.call('SET', KEYS[1], new)
redis.call('SET', KEYS[2], identity)
return new
"""


def new_epoch() -> str:
    """12 random digits (Django's serializer stores and reads digits as an integer)."""
    return str(10**11 + secrets.randbelow(9 * 10**11))


def script_args(epoch_key: str, identity_key: str) -> tuple:
    """The arguments of ``EVAL`` for :data:`SCRIPT` (two candidates: the old one may repeat)."""
    return (SCRIPT, 2, epoch_key, identity_key, new_epoch(), new_epoch())
