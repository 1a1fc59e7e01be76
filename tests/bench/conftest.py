"""Fixtures: the stand-in stack on loopback, and a run directory that points at it."""

from __future__ import annotations

import json
import os

import pytest

from strata.bench.endpoints import Endpoints
from tests.bench.fakestack import FakeStack


@pytest.fixture
def fake():
    with FakeStack() as server:
        yield server


def endpoints_of(server: FakeStack, secret: str = "s3cret") -> Endpoints:
    """The stand-in plays the load balancer and the pool (Host with a port or without)."""
    return Endpoints(
        host="127.0.0.1",
        port=server.port,
        pool_host="127.0.0.1",
        pool_port=server.port,
        secret=secret,
        source=f"stand-in on 127.0.0.1:{server.port}",
    )


def write_run_dir(path, server: FakeStack, pid: int | None = None, secret: str = "s3cret"):
    """What `strata up` leaves in its run directory, for a stack that is the stand-in."""
    path.mkdir(parents=True, exist_ok=True)
    rows = [
        {"layer": "load balancer", "address": f"127.0.0.1:{server.port}, pool {server.port}"},
        {"layer": "accelerator", "address": "127.0.0.1:1"},
        {"layer": "app server", "address": "127.0.0.1:2"},
    ]
    programs = {
        "haproxy": {
            "layer": "load balancer",
            "host": "127.0.0.1",
            "port": server.port,
            "pool_port": server.port,
        },
        "varnish1": {"layer": "accelerator", "host": "127.0.0.1", "port": 1},
        "app1": {"layer": "app server", "host": "127.0.0.1", "port": 2},
    }
    state = {
        "pid": pid or os.getpid(),
        "url": f"http://127.0.0.1:{server.port}/",
        "rows": rows,
        "programs": programs,
    }
    (path / "state.json").write_text(json.dumps(state))
    (path / "purge-secret").write_text(secret + "\n")
    return path
