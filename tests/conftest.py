"""Session-wide fixtures: one real stack (PostgreSQL, Redis, uWSGI, Varnish, HAProxy)."""

from __future__ import annotations

import pytest

from tests.helpers import demo_stack


@pytest.fixture(scope="session")
def stack():
    """The whole stack with the demo site and a small seed, TLS on, two app servers."""
    # edge_ttl 300 s: "still cached" in a test means "not purged", not "not expired".
    with demo_stack(tls=True) as the_stack:
        yield the_stack
