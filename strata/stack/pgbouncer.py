"""pgbouncer: a private connection pooler in transaction mode, in front of a PostgreSQL.

Its configuration comes from the template that ``strata config`` renders for production
(``pgbouncer.ini.j2``), with the optional variables of a private instance: loopback only,
no Unix socket, no password (``auth_type = trust``), logging to its output.

pgbouncer refuses to run as root, so as root it runs as the ``postgres`` user, as
PostgreSQL does (:mod:`strata.stack.postgres`); its two files must then be readable by
that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import StackError
from .postgres import PostgreSQL, _traversable_by_others, directory_for_postgres_user
from .program import Program, program_version
from .render import write_config

__all__ = ["PgBouncer", "find_pgbouncer"]

ADMIN_DATABASE = "pgbouncer"  # pgbouncer's own console: SHOW POOLS, SHOW SERVERS, ...


def find_pgbouncer() -> Path | None:
    """The ``pgbouncer`` program (Debian puts it in /usr/sbin, often not on PATH).

    ``STRATA_PGBOUNCER`` overrides the search (set it empty to pretend none exists).
    """
    override = os.environ.get("STRATA_PGBOUNCER")
    if override is not None:
        return Path(override) if override and Path(override).is_file() else None
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")
    return Path(found) if found else None


class PgBouncer(Program):
    """pgbouncer in transaction mode between the app servers and one PostgreSQL.

    ``pool_size`` server connections per database and user. ``round_robin`` hands idle
    server connections out in turn instead of most recently used first, and keeps the
    whole pool open while clients are connected, so that consecutive transactions of one
    client land on different server connections: what leans on session state then fails
    at once, not only under load (the tests rely on it).
    """

    layer = "pooler"
    implementation = "pgbouncer"

    def __init__(
        self,
        name: str,
        run_dir: Path,
        host: str,
        port: int,
        server: PostgreSQL,
        binary: Path,
        pool_size: int = 20,
        max_client_conn: int = 200,
        round_robin: bool = False,
    ):
        super().__init__(name, run_dir, host, port)
        if not isinstance(pool_size, int) or pool_size < 1:
            raise StackError(name, f"pool_size must be a whole number >= 1, not {pool_size!r}")
        if not isinstance(max_client_conn, int) or max_client_conn < 1:
            raise StackError(
                name, f"max_client_conn must be a whole number >= 1, not {max_client_conn!r}"
            )
        self.server = server
        self.binary = binary
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.round_robin = round_robin
        self.base = directory_for_postgres_user(run_dir, name)
        self.config_path = self.base / "pgbouncer.ini"
        self.userlist_path = self.base / "userlist.txt"

    @property
    def database_name(self) -> str:
        """The database pgbouncer serves (the server's, under the same name)."""
        return self.server.database_name

    @property
    def url(self) -> str:
        """The ``DATABASE_URL`` for Django, through pgbouncer (:func:`strata.env.database`
        reads ``pool_mode=transaction`` and turns server-side cursors off)."""
        return (
            f"postgres://postgres@{self.host}:{self.port}/{self.database_name}"
            "?pool_mode=transaction"
        )

    def user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def cwd(self) -> Path:
        return self.base

    def version(self) -> str:
        return program_version([str(self.binary), "--version"], lambda s: s.split()[1])

    def prepare(self) -> None:
        if not self.binary.is_file():
            raise StackError(self.name, f"pgbouncer not found at {self.binary}")
        self.base.mkdir(parents=True, exist_ok=True)
        if self.user() and not _traversable_by_others(self.base):
            raise StackError(
                self.name, f"user {self.user()} cannot reach {self.base}; choose another --run-dir"
            )
        site = "strata up"
        write_config(
            self.config_path,
            "pgbouncer.ini.j2",
            site=site,
            database=self.database_name,
            primary={"host": self.server.host, "port": self.server.port},
            replicas=[],
            host=self.host,
            port=self.port,
            pool_size=self.pool_size,
            max_client_conn=self.max_client_conn,
            # A private instance: TCP on loopback only, no password, output to its log.
            unix_socket_dir="",
            auth_type="trust",
            auth_file=str(self.userlist_path),
            reserve_pool_size=0,
            logfile="",
            pidfile="",
            **(
                # Every server connection open and taken in turn.
                {"server_round_robin": 1, "min_pool_size": self.pool_size}
                if self.round_robin
                else {}
            ),
        )
        write_config(
            self.userlist_path, "pgbouncer-userlist.txt.j2", site=site, user="postgres", secret=""
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [str(self.binary), str(self.config_path)]  # no -d: stays in the foreground

    def admin(self, command: str) -> list[list[str]]:
        """Run one command on pgbouncer's console (``SHOW SERVERS``...); its rows."""
        psql = self.server.bindir / "psql"
        argv = [str(psql), "-h", self.host, "-p", str(self.port), "-U", "postgres"]
        argv += ["-d", ADMIN_DATABASE, "-tAXF", "\t", "-c", command]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StackError(self.name, f"{command}: {exc}", self.log_path) from exc
        if result.returncode != 0:
            raise StackError(self.name, f"{command}: {result.stderr.strip()}", self.log_path)
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    def healthy(self) -> bool:
        try:
            self.admin("SHOW VERSION")
        except StackError:
            return False
        return True
