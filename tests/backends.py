"""Run the cache tests again on each real backend: ``python -m tests.backends [NAME ...]``.

======================  ==========================================================
``postgres-redis``      PostgreSQL + Redis (the real path)
``postgres-memcached``  PostgreSQL + Memcached (pymemcache)
``sqlite-file``         SQLite + the file cache (the embedded default, shared by
                        processes)
======================  ==========================================================

Each backend's programs are started here on free loopback ports (Strata's own stack
runner), ``DATABASE_URL``/``CACHE_URL`` point the demo settings at them, pytest runs the
query-cache, version-store, page-cache, fragment, timing and metrics tests, and the programs are stopped. Extra pytest
arguments follow ``--``. Exits non-zero when any run fails.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import REPO, pytest_command
from tests.suites.services import ServiceMissing, running_services

BACKENDS = ("postgres-redis", "postgres-memcached", "sqlite-file")
TESTS = [
    "tests/querycache",
    "tests/tags/test_versions.py",
    "tests/pages",
    "tests/fragments",
    "tests/timing",
    "tests/metrics/test_metrics.py",
]


def run(name: str, extra: list[str]) -> int:
    database, cache = name.split("-")
    try:
        with running_services(database, cache) as services:
            env = dict(
                os.environ,
                STRATA_TEST_BACKEND=name,
                DATABASE_URL=services.database_url,
                CACHE_URL=services.cache_url,
            )
            print(
                f"== {name}: DATABASE_URL={env['DATABASE_URL']} CACHE_URL={env['CACHE_URL']}",
                flush=True,
            )
            command = pytest_command(*TESTS, *extra)
            return subprocess.run(command, cwd=REPO, env=env).returncode
    except ServiceMissing as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1


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
