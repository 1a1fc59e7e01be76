"""PostgreSQL: a private cluster under the run directory, on its own port.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
user that Debian's package creates, and every directory on the way must be traversable
by it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import re
import signal
import subprocess
import tempfile
from pathlib import Path

from .errors import StackError
from .program import Program, program_version

__all__ = ["PostgreSQL", "PostgreSQLReplica", "find_postgres_bindir"]


def find_postgres_bindir() -> Path | None:
    """The directory holding ``postgres`` and ``initdb``; newest major version first.

    ``STRATA_POSTGRES_BINDIR`` overrides the search (set it empty to pretend none exists).
    """
    override = os.environ.get("STRATA_POSTGRES_BINDIR")
    if override is not None:
        candidates = [override] if override else []
    else:
        candidates = sorted(
            glob.glob("/usr/lib/postgresql/*/bin"),
            key=lambda p: int(re.sub(r"\D", "", Path(p).parent.name) or 0),
            reverse=True,
        )
        candidates += ["/usr/local/pgsql/bin"]
    for candidate in candidates:
        if (Path(candidate) / "postgres").is_file() and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    return None


def directory_for_postgres_user(run_dir: Path, name: str) -> Path:
    """Where a program run as ``postgres`` keeps its files: ``run_dir/name`` when it can.

    As root PostgreSQL (and pgbouncer) run as ``postgres``, which cannot enter a run
    directory under a private home (mode 0700); the files then live under the system's
    temporary directory, named after the run directory so that they are found again.
    """
    preferred = run_dir / name
    if os.geteuid() != 0 or _traversable_by_others(preferred):
        return preferred
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"strata-{name}-{digest}"


def _traversable_by_others(path: Path) -> bool:
    """True when every existing directory on the way to ``path`` is world-executable."""
    for parent in [path.resolve(), *path.resolve().parents]:
        if parent.exists() and not os.stat(parent).st_mode & 0o001:
            return False
    return True


def _run_as(owner: str | None, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool as ``owner`` (None: as ourselves), its output captured."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        user=owner,
        group=owner,
        extra_groups=None if owner is None else [],
    )


class PostgreSQL(Program):
    """A PostgreSQL cluster of its own, tuned for a disposable local stack."""

    layer = "database"
    implementation = "PostgreSQL"
    stop_signal = signal.SIGINT  # "fast" shutdown: disconnect clients, exit at once
    database_name = "strata"

    def __init__(self, name, run_dir, host, port, bindir: Path, durable: bool = False):
        super().__init__(name, run_dir, host, port)
        self.bindir = bindir
        self.durable = durable
        self.base = directory_for_postgres_user(run_dir, name)
        self.data_dir = self.base / "data"
        self.clients_network: str | None = None  # a subnet allowed in, besides loopback

    @property
    def url(self) -> str:
        """The ``DATABASE_URL`` for Django."""
        return f"postgres://postgres@{self.host}:{self.port}/{self.database_name}"

    def user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def cwd(self) -> Path:
        return self.base

    def version(self) -> str:
        return program_version([str(self.bindir / "postgres"), "--version"], lambda s: s.split()[2])

    def prepare(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        owner = self.user()
        if owner:
            try:
                entry = pwd.getpwnam(owner)
            except KeyError as exc:
                raise StackError(self.name, f"running as root needs the user {owner!r}") from exc
            if not _traversable_by_others(self.base):
                raise StackError(
                    self.name, f"user {owner} cannot reach {self.base}; choose another --run-dir"
                )
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.clients_network:
            self._allow_clients(self.clients_network)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def _initdb(self) -> None:
        argv = [
            str(self.bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
        if not self.durable:
            argv.append("--no-sync")
        result = _run_as(self.user(), argv, cwd=self.base)
        if result.returncode != 0:
            init_log = self.run_dir / "logs" / "initdb.log"
            init_log.parent.mkdir(parents=True, exist_ok=True)
            init_log.write_text(result.stdout + result.stderr)
            raise StackError(self.name, "initdb failed", init_log, detail=result.stderr[-2000:])

    def _allow_clients(self, network: str) -> None:
        """Let the app and replica hosts of a multi-host stack in (initdb trusts loopback)."""
        hba = self.data_dir / "pg_hba.conf"
        text = hba.read_text()
        for line in (f"host all all {network} trust\n", f"host replication all {network} trust\n"):
            if line not in text:
                text += line
        hba.write_text(text)

    def argv(self) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "max_connections": "200",
            "shared_buffers": "128MB",
            "log_min_duration_statement": "-1",
        }
        if not self.durable:
            # A local, disposable cluster: trade durability for speed.
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
            # Without synchronous commit, WAL reaches a replica only when the WAL writer
            # flushes it (every 200 ms by default): readers of the replica would wait.
            settings["wal_writer_delay"] = "10ms"
        argv = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.base),
        ]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def healthy(self) -> bool:
        result = subprocess.run(
            [str(self.bindir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
            capture_output=True,
            timeout=5,
        )
        return result.returncode == 0

    def wait_ready(self, timeout: float | None = None) -> None:
        super().wait_ready(timeout)
        self._ensure_database()

    def _ensure_database(self) -> None:
        psql = [
            str(self.bindir / "psql"),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ]
        exists = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{self.database_name}'"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if exists.returncode != 0:
            raise StackError(self.name, f"psql failed: {exists.stderr.strip()}", self.log_path)
        if exists.stdout.strip() != "1":
            created = subprocess.run(
                [*psql, f'CREATE DATABASE "{self.database_name}"'],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if created.returncode != 0:
                raise StackError(
                    self.name,
                    f"could not create the database: {created.stderr.strip()}",
                    self.log_path,
                )


class PostgreSQLReplica(PostgreSQL):
    """A hot standby cloned from ``primary`` with ``pg_basebackup -R`` (streaming).

    Its replay can be held back at run time (``recovery_min_apply_delay``, reloadable) to
    show that caches never store what a lagging replica returns.
    """

    implementation = "PostgreSQL replica"

    def __init__(self, name, run_dir, host, port, primary: PostgreSQL):
        self.primary = primary
        super().__init__(name, run_dir, host, port, primary.bindir)

    def prepare(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if (self.data_dir / "PG_VERSION").exists():
            return
        owner = self.user()
        if owner is not None:
            entry = pwd.getpwnam(owner)
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
        result = _run_as(owner, argv, cwd=self.base)
        if result.returncode != 0:
            raise StackError(self.name, "pg_basebackup failed", detail=result.stderr[-2000:])

    def wait_ready(self, timeout: float | None = None) -> None:
        Program.wait_ready(self, timeout)  # a standby is read-only: no CREATE DATABASE
