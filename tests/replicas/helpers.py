"""A private PostgreSQL primary and a streaming replica whose replay can be held back."""

from __future__ import annotations

import subprocess
import time

from strata.stack.postgres import PostgreSQL, PostgreSQLReplica

Replica = PostgreSQLReplica


def psql(server: PostgreSQL, sql: str, database: str = "postgres") -> str:
    """Run one statement with psql and return its unaligned output."""
    result = subprocess.run(
        [
            str(server.bindir / "psql"),
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-tAXc",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"psql on {server.name}: {result.stderr.strip()}")
    return result.stdout.strip()


def lsn(server: PostgreSQL, function: str) -> int:
    return int(psql(server, f"SELECT {function}() - '0/0'::pg_lsn") or 0)


def set_apply_delay(replica: Replica, delay: str) -> None:
    """Hold back (or release) the replica's replay of commits: reloadable, no restart."""
    psql(replica, f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay}'")
    psql(replica, "SELECT pg_reload_conf()")


def wait_caught_up(primary: PostgreSQL, replica: Replica, timeout: float = 30.0) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    target = lsn(primary, "pg_current_wal_insert_lsn")
    deadline = time.monotonic() + timeout
    while lsn(replica, "pg_last_wal_replay_lsn") < target:
        if time.monotonic() > deadline:
            raise AssertionError(f"the replica did not replay up to {target} in {timeout} s")
        time.sleep(0.05)
