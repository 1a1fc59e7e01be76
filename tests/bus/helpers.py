"""A private redis-server for the bus's tests and benchmarks."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from strata.stack.program import find_program
from strata.stack.redis import Redis
from tests.helpers import free_base_port, skip_locally_fail_in_ci


@contextlib.contextmanager
def running_redis() -> Iterator[Redis]:
    """A redis-server on a free loopback port, in a run directory removed afterwards."""
    binary = find_program("redis-server")
    if binary is None:
        skip_locally_fail_in_ci("redis-server is not installed (scripts/bootstrap.sh)")
    run_dir = Path(tempfile.mkdtemp(prefix="strata-bus-", dir="/tmp"))
    server = Redis("redis", run_dir, "127.0.0.1", free_base_port() + 379, binary)
    server.start()
    server.wait_ready()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
