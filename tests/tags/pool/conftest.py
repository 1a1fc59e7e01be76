"""Real memcached processes for the pool tests, and a Django cache alias over them.

Each test gets its own servers on free loopback ports, stopped by pid afterwards (also
when the test fails). A node is *partitioned* with SIGSTOP and healed with SIGCONT: the
process keeps its memory, so it comes back with its old values, as a node cut off by the
network does. One difference: a command sent to a stopped node waits in its socket and
is applied when it resumes, so the tests let a store find the node silent (and stay
away from it) before the writes it must miss. It is *killed* with SIGKILL and *restarted empty* on its port.

The cache alias ``pool`` is Django's stock ``PyMemcacheCache`` over the servers, with
short timeouts and HashClient's dead-node intervals shortened (a node is dropped after
its first failure and tried again after 1 s instead of 60 s): the same mechanism, faster.
"""

from __future__ import annotations

import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.cache import caches

from strata.stack.memcached import Memcached
from strata.stack.ports import free_port
from strata.stack.program import find_program
from strata.tags import versions
from strata.tags.stores import version_store

DEAD_TIMEOUT = 1.0  # HashClient's dead_timeout here (60 s by default)
TIMEOUT = 0.2  # seconds a paused node takes to fail a call


class Pool:
    """Memcached servers started for one test."""

    def __init__(self, run_dir: Path, count: int):
        self.run_dir = run_dir
        self.nodes: list[Memcached] = []
        binary = find_program("memcached")
        for index in range(count):
            node = Memcached(f"mc{index}", run_dir, "127.0.0.1", free_port(), binary, 16)
            self.nodes.append(node)
            node.start()
        for node in self.nodes:
            node.wait_ready(10)

    @property
    def locations(self) -> list[str]:
        return [node.address for node in self.nodes]

    def pause(self, index: int) -> None:
        """Partition a node: it stops answering but keeps its memory."""
        self.nodes[index].process.send_signal(signal.SIGSTOP)
        wait_until(lambda: _threads_in_state(self.nodes[index].pid, "T"))

    def resume(self, index: int) -> None:
        """Heal the partition: the node answers again, with its old values."""
        self.nodes[index].process.send_signal(signal.SIGCONT)
        wait_until(lambda: _threads_in_state(self.nodes[index].pid, "SR"))

    def kill(self, index: int) -> None:
        """The node dies and stays dead."""
        self.resume(index)
        self.nodes[index].kill(signal.SIGKILL)

    def restart_empty(self, index: int) -> None:
        """The node dies and a new, empty one takes its port."""
        old = self.nodes[index]
        self.kill(index)
        node = Memcached(old.name, self.run_dir, old.host, old.port, old.binary, 16)
        node.start()
        node.wait_ready(10)
        self.nodes[index] = node

    def stop(self) -> None:
        for node in self.nodes:
            if node.running():
                node.process.send_signal(signal.SIGCONT)  # a stopped process ignores TERM
                node.kill(signal.SIGKILL)


def _threads_in_state(pid: int, states: str) -> bool:
    """True when every thread of ``pid`` is in one of ``states`` (signals land late)."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
        if state not in states:
            return False
    return True


def pool_cache(locations: list[str]) -> dict:
    """Django's stock pool over ``locations`` (HashClient), with test-sized intervals."""
    return {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": locations,
        "OPTIONS": {
            "timeout": TIMEOUT,
            "connect_timeout": TIMEOUT,
            "retry_attempts": 0,
            "dead_timeout": DEAD_TIMEOUT,
        },
    }


def start_pool(count: int, settings):
    if find_program("memcached") is None:
        pytest.skip("memcached is not installed")
    run_dir = Path(tempfile.mkdtemp(prefix="strata-pool-", dir="/tmp"))
    pool = Pool(run_dir, count)
    settings.CACHES = {**settings.CACHES, "pool": pool_cache(pool.locations)}
    settings.STRATA = {**settings.STRATA, "CACHE": "pool"}
    version_store.cache_clear()
    versions.outage_warnings.last.clear()
    return pool


@pytest.fixture
def pool(settings):
    """Three memcached servers and the cache alias ``pool`` over them."""
    started = start_pool(3, settings)
    yield started
    started.stop()
    caches["pool"].close()


@pytest.fixture
def pool_of_two(settings):
    """Two memcached servers and the cache alias ``pool`` over them."""
    started = start_pool(2, settings)
    yield started
    started.stop()
    caches["pool"].close()


class AppProcess:
    """Another app-server process: a thread of its own, so its own Django cache client.

    Django keeps one cache client (here one ``HashClient``, with its own dead-node
    bookkeeping) per thread, as separate processes each keep their own.
    """

    def __init__(self, make_store):
        self._thread = ThreadPoolExecutor(max_workers=1)
        self.store = self.run(make_store)

    def run(self, function, *args):
        return self._thread.submit(function, *args).result(timeout=30)

    def call(self, method: str, *args, **kwargs):
        """Call a method of this process's version store, in this process."""
        return self.run(lambda: getattr(self.store, method)(*args, **kwargs))

    def close(self) -> None:
        self.run(lambda: caches["pool"].close())
        self._thread.shutdown()


def node_of(address: str, pool: Pool) -> int:
    return pool.locations.index(address)


def hash_client_node(key_name: str) -> str:
    """The server Django's HashClient puts a cache key on right now (``host:port``)."""
    backend = caches["pool"]
    server = backend._cache.hasher.get_node(backend.make_key(key_name))
    return server


def names_on(address: str, prefix: str, count: int = 1, where=None) -> list[str]:
    """``count`` names ``prefix<n>`` for which ``where(name)`` equals ``address``."""
    found = []
    for n in range(10_000):
        name = f"{prefix}{n}"
        if where(name) == address:
            found.append(name)
            if len(found) == count:
                return found
    raise AssertionError(f"no name placed on {address}")


def wait_until(predicate, timeout: float = 10.0):
    """Poll ``predicate`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
