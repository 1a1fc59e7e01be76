"""The owed-purges records (``strata.edge.fence.Fence``) in the tests' cache, and the
purger keeping them against a real varnishd that is down, then back.

``tests/edge/test_fence.py`` shows the whole path through HAProxy; these pin down the
bookkeeping: shares, their expiry, voiding by a younger cache, and node names.
"""

from __future__ import annotations

import time
import uuid

import pytest

from strata.edge.fence import Fence, node_id, nodes_named
from strata.edge.purge import Purger
from strata.stack.ports import free_port
from tests.edge.helpers import LOOPBACK, SECRET, Forwarder, poll, running_edge


@pytest.fixture
def fence() -> Fence:
    return Fence("default")


@pytest.fixture
def node() -> str:
    """A node id no other test uses."""
    return f"192.0.2.{uuid.uuid4().int % 250 + 1}:{uuid.uuid4().int % 50000 + 1024}"


def test_each_process_that_owes_a_node_counts_until_it_delivered(fence, node):
    first = fence.owe(node, 60)
    second = fence.owe(node, 60)

    assert fence.owed([node]) == 2
    fence.paid(node, first)
    assert fence.owed([node]) == 1
    fence.paid(node, second)
    assert fence.owed([node]) == 0


def test_a_debt_expires_when_the_node_cannot_hold_older_pages_any_more(fence, node):
    fence.owe(node, 1)  # a process that then died without paying
    assert fence.owed([node]) == 1

    assert poll(lambda: fence.owed([node]) == 0, timeout=5)


def test_a_node_whose_cache_is_younger_than_the_last_failure_owes_nothing(fence, node):
    old = fence.owe(node, 60)
    failed = time.time()

    assert fence.owed([node], born=failed - 5) == 1  # it held pages from before
    assert fence.owed([node], born=failed + 5) == 0  # it restarted after: voided
    assert fence.owed([node]) == 0

    new = fence.owe(node, 60)  # a failure after the restart counts again
    fence.paid(node, old)  # a share of the voided generation takes nothing back
    assert fence.owed([node]) == 1
    fence.paid(node, new)
    assert fence.owed([node]) == 0


def test_a_share_that_was_voided_is_counted_anew_when_it_grows(fence, node):
    generation = fence.owe(node, 60)
    assert fence.owed([node], born=time.time() + 5) == 0

    again = fence.extend(node, generation, 60)

    assert again != generation
    assert fence.owed([node]) == 1


def test_a_node_is_named_by_the_address_and_port_purges_go_to():
    accelerators = ("http://127.0.0.1:6081", "http://localhost:6082", "http://10.0.2.1:6091")

    assert node_id("http://localhost:6082") == "127.0.0.1:6082"
    assert nodes_named("127.0.0.1:6082", accelerators) == ["127.0.0.1:6082"]
    # With PROXY protocol the check arrives on the public port, purges on another.
    assert nodes_named("10.0.2.1:6081", accelerators) == ["10.0.2.1:6091"]
    assert nodes_named("10.9.9.9:6081", accelerators) == []


@pytest.mark.stack
def test_the_purger_owes_a_node_that_is_down_and_pays_when_it_got_the_purge(fence):
    with running_edge() as edge:
        path = f"/{uuid.uuid4().hex[:8]}/page?xkey=fenced"
        assert edge.get(path)[0] == "MISS"
        later = Forwarder(free_port(set()), (LOOPBACK, edge.port))
        url = f"http://{LOOPBACK}:{later.port}"
        purge = Purger([url], SECRET, delay=60, retries=1, keep_trying=60, fence=fence)
        try:
            assert purge.purge({"fenced"}).wait(5) is False  # the node is down
            assert poll(lambda: fence.owed([node_id(url)]) == 1)
            assert edge.get(path)[0] == "HIT"  # it still holds the old page

            later.start()

            assert poll(lambda: purge.stats["purged"] >= 1, timeout=15)
            assert poll(lambda: fence.owed([node_id(url)]) == 0)
            assert edge.get(path)[0] == "MISS"
        finally:
            purge.close(timeout=2)
            later.stop()
