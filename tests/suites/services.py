"""The real database and cache servers a suite runs against, started on free loopback ports."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from strata.stack.memcached import Memcached
from strata.stack.postgres import PostgreSQL, find_postgres_bindir
from strata.stack.program import find_program
from strata.stack.redis import Redis
from tests.helpers import free_base_port

__all__ = ["Services", "ServiceMissing", "running_services", "DATABASES", "CACHES"]

DATABASES = ("postgres", "sqlite")
CACHES = ("redis", "memcached", "file")


@dataclass
class Services:
    """Where the started servers answer."""

    run_dir: Path
    database_url: str
    cache_url: str
    postgres: PostgreSQL | None = None


class ServiceMissing(RuntimeError):
    """A server the suite needs is not installed."""


@contextlib.contextmanager
def running_services(database: str, cache: str) -> Iterator[Services]:
    """Start ``database`` (postgres or sqlite) and ``cache`` (redis, memcached or file).

    SQLite and the file cache are files under a private run directory; PostgreSQL,
    Redis and memcached are real servers on loopback, stopped (by their PID) and their
    files removed when the block ends.
    """
    if database not in DATABASES or cache not in CACHES:
        raise ValueError(f"unknown database {database!r} or cache {cache!r}")
    run_dir = Path(tempfile.mkdtemp(prefix=f"strata-{database}-{cache}-", dir="/tmp"))
    run_dir.chmod(0o755)  # PostgreSQL runs as postgres when we are root
    base = free_base_port()
    programs = []
    try:
        database_url = f"sqlite:///{run_dir / 'db.sqlite3'}"
        postgres = None
        if database == "postgres":
            bindir = find_postgres_bindir()
            if bindir is None:
                raise ServiceMissing("PostgreSQL is not installed (scripts/bootstrap.sh)")
            postgres = PostgreSQL("postgres", run_dir, "127.0.0.1", base + 432, bindir)
            programs.append(postgres)
        cache_url = f"file://{run_dir / 'cache'}"
        cache_program = None
        if cache == "redis":
            binary = find_program("redis-server")
            if binary is None:
                raise ServiceMissing("redis-server is not installed (scripts/bootstrap.sh)")
            cache_program = Redis("redis", run_dir, "127.0.0.1", base + 379, binary)
        elif cache == "memcached":
            binary = find_program("memcached")
            if binary is None:
                raise ServiceMissing("memcached is not installed (scripts/bootstrap.sh)")
            cache_program = Memcached("memcached", run_dir, "127.0.0.1", base + 211, binary)
        if cache_program is not None:
            programs.append(cache_program)
        for program in programs:
            program.start()
            program.wait_ready()
        if postgres is not None:
            database_url = postgres.url
        if cache_program is not None:
            cache_url = cache_program.url
        yield Services(run_dir, database_url, cache_url, postgres)
    finally:
        for program in reversed(programs):
            program.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
