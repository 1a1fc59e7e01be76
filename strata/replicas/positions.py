"""The replica rule: store what a replica returned only if it had replayed the primary's writes.

A builder snapshots tag versions, then reads. A version it saw may have been changed by a
writer whose commit the replica has not replayed yet: the read returns old rows, and
storing them under the new versions would make a stale hit (``docs/design.md``). So, for a
read on a replica while something may be stored (a query result, or a page or fragment
whose recorder is open):

1. after the version snapshot, ask the primary for ``pg_current_wal_insert_lsn()``. Every
   version in the snapshot was changed after its writer committed, so every commit behind
   the snapshot lies at or before this position (the insert position, not the write
   position: with ``synchronous_commit = off`` a commit returns, and its versions change,
   before its WAL is written out);
2. before the read, make sure the replica has replayed at least that far
   (``pg_last_wal_replay_lsn()``); a later statement on a hot standby sees everything
   replayed before it starts. The position a replica connection reported last is
   remembered on that connection (positions only grow while it lives; a new connection,
   after a restart or a failover, asks again), so the replica is asked only when the
   primary has moved on since;
3. if it has not, the read is still served (that is replication, not the cache) but
   nothing built from it is stored.

Checking the replica *after* the read would not do: it may have replayed the commit
between the read and the check. Taking the primary's position *before* the snapshot would
not do either: a commit and its version change may fall between the two.
"""

from __future__ import annotations

import logging

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["replica_behind", "BEHIND"]

log = logging.getLogger("strata.replicas")

BEHIND = "replica behind the primary"
UNKNOWN = "replica position unknown"

_PRIMARY_SQL = "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"
_REPLICA_SQL = "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn"
_SEEN_ATTR = "_strata_replayed"


def _position(connection: BaseDatabaseWrapper, sql: str) -> int | None:
    # The DB-API cursor: no query log, no timing hooks, and not mistaken for a raw read
    # by the query cache.
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(sql)
        (value,) = cursor.fetchone()
    return None if value is None else int(value)


def replica_behind(replica: BaseDatabaseWrapper) -> str | None:
    """Why what is read from ``replica`` now must not be stored, or None when it may be.

    Call it after the versions were snapshotted and before the read.
    """
    primary = connections[DEFAULT_DB_ALIAS]
    if replica.vendor != "postgresql" or primary.vendor != "postgresql":
        return f"{UNKNOWN} (only PostgreSQL reports it)"
    if primary.in_atomic_block:
        # An error here would abort the primary's transaction: do not ask.
        return f"{UNKNOWN} (a transaction is open on the primary)"
    try:
        target = _position(primary, _PRIMARY_SQL)
        if target is None:
            # A primary always has an insert position (in recovery it raises instead).
            return f"{UNKNOWN} (the primary reports no WAL position)"
        seen = getattr(replica, _SEEN_ATTR, None)
        if seen is not None and seen[0] is replica.connection and seen[1] >= target:
            return None
        replayed = _position(replica, _REPLICA_SQL)
    except Exception as exc:
        log.warning("strata: could not compare WAL positions of %s (%s)", replica.alias, exc)
        return f"{UNKNOWN} ({type(exc).__name__})"
    if replayed is None:
        return None  # not in recovery: a server that replays nothing lags nothing
    setattr(replica, _SEEN_ATTR, (replica.connection, replayed))
    return None if replayed >= target else BEHIND
