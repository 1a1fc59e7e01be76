"""A private PostgreSQL primary and a streaming replica whose replay can be held back."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from strata.stack.errors import StackError
from strata.stack.ports import port_is_free
from strata.stack.postgres import PostgreSQL

from ..stackutil import free_base_port


class Replica(PostgreSQL):
    """A hot standby cloned from ``primary`` with ``pg_basebackup -R``."""

    implementation = "PostgreSQL replica"

    def __init__(self, name, run_dir, host, port, primary: PostgreSQL):
        self.primary = primary
        super().__init__(name, run_dir, host, port, primary.bindir)

    def _choose_base(self, run_dir: Path) -> Path:
        return run_dir / self.name

    def prepare(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "PG_VERSION").exists():
            return
        owner = self.user()
        if owner:
            import pwd

            entry = pwd.getpwnam(owner)
            import os

            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        argv = [
            str(self.bindir / "pg_basebackup"),
            "-D",
            str(self.data_dir),
            "-h",
            self.primary.host,
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "--no-sync",
            "-c",
            "fast",
        ]
        extra = {"user": "postgres", "group": "postgres", "extra_groups": []} if owner else {}
        result = subprocess.run(
            argv, capture_output=True, text=True, cwd=self.base, timeout=120, **extra
        )
        if result.returncode != 0:
            raise StackError(self.name, "pg_basebackup failed", detail=result.stderr[-2000:])

    def wait_ready(self, timeout: float | None = None) -> None:
        super(PostgreSQL, self).wait_ready(timeout)  # no CREATE DATABASE on a standby


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


def free_ports(count: int) -> list[int]:
    """``count`` free loopback ports below 32768."""
    base = free_base_port()
    ports = [base + 5 + i for i in range(count)]
    if not all(port_is_free("127.0.0.1", p) for p in ports):
        return free_ports(count)
    return ports
