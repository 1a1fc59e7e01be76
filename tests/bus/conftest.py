"""A real Redis and a real varnishd (Strata's VCL, the xkey vmod) for the bus's tests."""

from __future__ import annotations

import pytest

from strata.bus import bus_log
from tests.bus.helpers import running_redis
from tests.edge.helpers import SECRET, running_edge


@pytest.fixture(scope="package")
def redis_server():
    """One redis-server on loopback for the package (each test uses its own prefix)."""
    with running_redis() as server:
        yield server


@pytest.fixture(scope="package")
def edge():
    with running_edge() as running:
        yield running


@pytest.fixture
def bus_settings(settings, redis_server, edge, request):
    """Django settings whose cache is the Redis (a key prefix per test) and whose one
    accelerator is the varnishd; returns the bus log."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": f"t{abs(hash(request.node.nodeid)) % 10**8}",
        }
    }
    settings.STRATA = {
        **settings.STRATA,
        "ACCELERATORS": [edge.url],
        "PURGE_SECRET": SECRET,
        "PURGE_DELAY": 0.3,
    }
    found = bus_log()
    assert found is not None
    return found
