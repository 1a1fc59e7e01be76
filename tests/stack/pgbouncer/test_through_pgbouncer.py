"""Run ``pgbouncer_cases.py`` against a real PostgreSQL behind a real pgbouncer.

pgbouncer runs in transaction mode with a pool of two server connections handed out in
turn (``server_round_robin``), so consecutive transactions of one Django connection run
on different server connections: anything that leans on session state breaks at once
instead of now and then. Django's ``DATABASES`` cannot change inside one test run, so the
cases run in a pytest of their own under ``tests.pgbouncer_settings``.
"""

from __future__ import annotations

import pytest

from strata.stack.pgbouncer import PgBouncer, find_pgbouncer
from strata.stack.ports import free_port
from strata.stack.postgres import PostgreSQL, find_postgres_bindir
from strata.stack.process import pid_alive
from tests.helpers import (
    make_run_dir,
    remove_run_dir,
    run_cases_in_own_pytest,
    skip_locally_fail_in_ci,
)

pytestmark = pytest.mark.stack

POOL_SIZE = 2


def require_programs():
    """Skip locally, fail in CI, when PostgreSQL or pgbouncer is not installed."""
    missing = [
        name
        for name, found in (("postgresql", find_postgres_bindir()), ("pgbouncer", find_pgbouncer()))
        if found is None
    ]
    if missing:
        skip_locally_fail_in_ci(
            f"not installed: {', '.join(missing)} (scripts/bootstrap.sh installs them)"
        )


@pytest.fixture(scope="module")
def pooled():
    require_programs()
    run_dir = make_run_dir()
    taken: set[int] = set()
    pg_port, bouncer_port = free_port(taken), free_port(taken)
    server = PostgreSQL("postgres", run_dir, "127.0.0.1", pg_port, find_postgres_bindir())
    bouncer = PgBouncer(
        "pgbouncer",
        run_dir,
        "127.0.0.1",
        bouncer_port,
        server,
        find_pgbouncer(),
        pool_size=POOL_SIZE,
        round_robin=True,
    )
    try:
        server.start()
        server.wait_ready()
        bouncer.start()
        bouncer.wait_ready()
        yield server, bouncer
    finally:
        # Each stopped by its own pid, also when starting failed half-way.
        pids = [p.pid for p in (bouncer, server) if p.pid]
        bouncer.stop()
        server.stop()
        remove_run_dir(run_dir)
        assert not [pid for pid in pids if pid_alive(pid)], "a program outlived its stop"


def test_pgbouncer_runs_in_transaction_mode_with_the_pool_it_was_given(pooled):
    _, bouncer = pooled
    config = {row[0]: row[1] for row in bouncer.admin("SHOW CONFIG")}
    assert config["pool_mode"] == "transaction"
    assert config["default_pool_size"] == str(POOL_SIZE)
    assert config["server_round_robin"] == "1"
    assert config["listen_addr"] == "127.0.0.1"
    row = bouncer.status_row()
    assert (row.layer, row.implementation, row.pid) == ("pooler", "pgbouncer", bouncer.pid)
    assert row.version.startswith("1.")


def test_the_cached_orm_and_pages_stay_exact_through_pgbouncer(pooled):
    _, bouncer = pooled
    run_cases_in_own_pytest(
        "tests/stack/pgbouncer/pgbouncer_cases.py",
        "tests.pgbouncer_settings",
        {"DATABASE_URL": bouncer.url, "STRATA_TEST_PGBOUNCER_POOL_SIZE": str(POOL_SIZE)},
        "--tb=short",
        unset=("CACHE_URL",),
    )
