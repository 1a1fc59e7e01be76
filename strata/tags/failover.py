"""Tag versions on a Redis primary that Sentinel may replace: stamped with the failover epoch.

A failover can lose bumps that the old primary acknowledged but had not replicated, and
a restarted primary those made after its last save. A version read back afterwards is
the old one, so an artifact built before the bump's commit would match it: a stale hit.

So every version this store returns is stamped with the epoch (``<token>.<epoch>``),
read in the same MGET as the version itself. The epoch changes whenever the primary
changes or restarts (:mod:`strata.cache.epoch`), before the new primary serves anything:
every snapshot taken before is then a miss, whichever layer stored it (pages, fragments,
query results) and wherever it is checked. Versions themselves are stored unstamped.

Missing versions are created here, while reading (one more round trip, only for them),
instead of being proposed and created when an artifact is stored: a proposed token could
not carry the epoch of the read that found the version missing.
"""

from __future__ import annotations

from ..cache.epoch import script_args
from .redis_store import RedisVersionStore, redis_loads
from .versions import new_version

__all__ = ["SentinelVersionStore"]

# Not a tag (tags never contain a space): stands for the epoch key in the MGET.
_EPOCH = "strata epoch"


class SentinelVersionStore(RedisVersionStore):
    """:class:`RedisVersionStore` whose versions carry the failover epoch."""

    # The push connection would stay with a primary that Sentinel has replaced.
    near_cache_allowed = False

    def __init__(self, cache_alias: str):
        super().__init__(cache_alias)
        self._epoch_keys = self.cache.epoch_keys
        self._create_script = self._client.register_script(_CREATE)

    def _version_key(self, tag: str) -> str:
        key = self._version_keys.get(tag)  # the hot path: no call to super()
        if key is None:
            key = self._epoch_keys[0] if tag is _EPOCH else super()._version_key(tag)
        return key

    def get_with(self, tags, extra_keys=()):
        tags = list(tags)
        versions, extras = super().get_with([_EPOCH, *tags], extra_keys)
        epoch = versions.pop(_EPOCH)
        if epoch is None:
            # The epoch key is gone (evicted, flushed): read everything again with a
            # new epoch, since what was read here has none to be stamped with.
            epoch, versions = self._create(tags, versions, new_epoch=True)
        elif None in versions.values():
            epoch, created = self._create([t for t, v in versions.items() if v is None])
            versions.update(created)
        suffix = f".{epoch}"  # tokens are strings (new_version); a foreign value never matches
        return {t: v if v is None else f"{v}{suffix}" for t, v in versions.items()}, extras

    def _create(self, tags: list[str], found: dict | None = None, *, new_epoch=False):
        """Create the versions of ``tags`` that are missing, and read them with the epoch.

        Returns ``(epoch, versions)``: one round trip (one command), two when the epoch
        itself must be created first. ``found``: tags whose versions exist (read again,
        not created).
        """
        dumps = self._serializer.dumps
        keys = [self._epoch_keys[0]] + [self._version_key(t) for t in tags]
        tokens = [dumps(new_version()) if not found or found.get(t) is None else b"" for t in tags]
        try:
            if new_epoch:
                self._client.eval(*script_args(*self._epoch_keys))
            raw = self._create_script(keys=keys, args=tokens, client=self._client)
        except Exception as exc:
            raise self._failed("add", exc) from exc
        if raw[0] is None:
            raise self._failed("add", RuntimeError("the failover epoch vanished"))
        values = [None if item is None else redis_loads(item) for item in raw]
        return values[0], dict(zip(tags, values[1:], strict=True))


# KEYS: the epoch, then versions; ARGV: a token per version, empty for one known to exist.
# One command whatever the number of tags (redis-py spends ~20 µs per pipelined command).
# Flagged as writing: a replica refuses it.
_CREATE = """#!lua
local found = {redis.call('GET', KEYS[1])}
for i = 2, #KEYS do
  if ARGV[i - 1] ~= '' then
    redis.call('SET', KEYS[i], ARGV[i - 1], 'NX')
  end
  found[i] = redis.call('GET', KEYS[i])
end
return found
"""
