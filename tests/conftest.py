"""Session-wide fixtures: one real stack (PostgreSQL, Redis, Gunicorn, Varnish, HAProxy)."""

from __future__ import annotations

import pytest

from strata.stack.stack import Stack, StackConfig, demo_project

from .stackutil import SMALL_SEED, free_base_port, make_run_dir, remove_run_dir, require_real_stack


@pytest.fixture(scope="session")
def stack():
    """The whole stack with the demo site and a small seed, TLS on, two app servers."""
    require_real_stack()
    run_dir = make_run_dir()
    config = StackConfig(
        run_dir=run_dir,
        project=demo_project(),
        port=free_base_port(),
        app_servers=2,
        workers=2,
        tls=True,
        # Long enough that "still cached" in a test means "not purged", not "not expired".
        edge_ttl=300,
        setup_commands=[["migrate", "--noinput"], SMALL_SEED],
    )
    the_stack = Stack(config)
    the_stack.start()
    try:
        yield the_stack
    finally:
        the_stack.stop()
        remove_run_dir(run_dir)
