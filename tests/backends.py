"""Run the cache tests again on each real backend: ``python -m tests.backends [NAME ...]``.

======================  ==========================================================
``postgres-redis``      PostgreSQL + Redis (the real path)
``postgres-memcached``  PostgreSQL + Memcached (pymemcache)
``sqlite-file``         SQLite + the file cache (the embedded default, shared by
                        processes)
======================  ==========================================================

Each backend's programs are started here on free loopback ports (Strata's own stack
runner), ``DATABASE_URL``/``CACHE_URL`` point the demo settings at them, pytest runs the
query-cache, version-store, page-cache and fragment tests, and the programs are stopped. Extra pytest
arguments follow ``--``. Exits non-zero when any run fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from strata.stack.memcached import Memcached
from strata.stack.postgres import PostgreSQL, find_postgres_bindir
from strata.stack.program import find_program
from strata.stack.redis import Redis

from .stackutil import free_base_port

BACKENDS = ("postgres-redis", "postgres-memcached", "sqlite-file")
TESTS = [
    "tests/querycache",
    "tests/test_versions.py",
    "tests/pages",
    "tests/fragments",
    "tests/timing",
]
REPO = Path(__file__).resolve().parents[1]


def run(name: str, extra: list[str]) -> int:
    run_dir = Path(tempfile.mkdtemp(prefix=f"strata-{name}-", dir="/tmp"))
    run_dir.chmod(0o755)
    base = free_base_port()
    programs = []
    env = dict(os.environ, STRATA_TEST_BACKEND=name)
    try:
        database, cache = name.split("-")
        if database == "postgres":
            bindir = find_postgres_bindir()
            if bindir is None:
                print(f"{name}: PostgreSQL is not installed", file=sys.stderr)
                return 1
            programs.append(PostgreSQL("postgres", run_dir, "127.0.0.1", base + 432, bindir))
        else:
            env["DATABASE_URL"] = f"sqlite:///{run_dir / 'db.sqlite3'}"
        if cache == "redis":
            programs.append(
                Redis(
                    "redis",
                    run_dir,
                    "127.0.0.1",
                    base + 379,
                    find_program("redis-server") or "redis-server",
                )
            )
        elif cache == "memcached":
            programs.append(
                Memcached(
                    "memcached",
                    run_dir,
                    "127.0.0.1",
                    base + 211,
                    find_program("memcached") or "memcached",
                )
            )
        else:
            env["CACHE_URL"] = f"file://{run_dir / 'cache'}"
        for program in programs:
            program.start()
            program.wait_ready()
            if isinstance(program, PostgreSQL):
                env["DATABASE_URL"] = program.url
            else:
                env["CACHE_URL"] = program.url
        print(
            f"== {name}: DATABASE_URL={env['DATABASE_URL']} CACHE_URL={env['CACHE_URL']}",
            flush=True,
        )
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS, *extra]
        return subprocess.run(command, cwd=REPO, env=env).returncode
    finally:
        for program in reversed(programs):
            program.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    names, extra = argv, []
    if "--" in argv:
        index = argv.index("--")
        names, extra = argv[:index], argv[index + 1 :]
    names = names or list(BACKENDS)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        print(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    failed = [name for name in names if run(name, extra) != 0]
    if failed:
        print(f"FAILED on: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
