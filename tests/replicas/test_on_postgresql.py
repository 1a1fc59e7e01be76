"""Run ``replica_cases.py`` against a real PostgreSQL primary and streaming replica.

Django's ``DATABASES`` cannot change inside one test run, so the cases run in a pytest of
their own under ``tests.replica_settings``; this test starts the two servers on free
loopback ports, runs it, and stops them.
"""

from __future__ import annotations

import pytest

from strata.stack.ports import free_port
from strata.stack.postgres import PostgreSQL, find_postgres_bindir
from tests.helpers import (
    make_run_dir,
    remove_run_dir,
    run_cases_in_own_pytest,
    skip_locally_fail_in_ci,
)
from tests.replicas.helpers import Replica, wait_caught_up

pytestmark = pytest.mark.stack


def require_postgresql():
    """Skip locally, fail in CI, when PostgreSQL is not installed."""
    if find_postgres_bindir() is None:
        skip_locally_fail_in_ci("not installed: postgresql (scripts/bootstrap.sh installs it)")


@pytest.fixture(scope="module")
def primary_and_replica():
    require_postgresql()
    run_dir = make_run_dir()
    taken: set[int] = set()
    primary_port, replica_port = free_port(taken), free_port(taken)
    primary = PostgreSQL("primary", run_dir, "127.0.0.1", primary_port, find_postgres_bindir())
    replica = Replica("replica", run_dir, "127.0.0.1", replica_port, primary)
    try:
        primary.start()
        primary.wait_ready()
        replica.start()
        replica.wait_ready()
        wait_caught_up(primary, replica)
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()
        remove_run_dir(run_dir)


def test_the_replica_rule_holds_on_a_real_primary_and_replica(primary_and_replica):
    primary, replica = primary_and_replica
    run_cases_in_own_pytest(
        "tests/replicas/replica_cases.py",
        "tests.replica_settings",
        {
            "STRATA_TEST_PRIMARY_URL": primary.url,
            "STRATA_TEST_REPLICA_URL": replica.url,
            "STRATA_TEST_PG_BINDIR": str(primary.bindir),
            "STRATA_TEST_PRIMARY_PORT": str(primary.port),
            "STRATA_TEST_REPLICA_PORT": str(replica.port),
        },
    )
