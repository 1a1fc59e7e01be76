"""The same topology without namespaces (loopback addresses), with a pool of memcached nodes.

Where network namespaces cannot be made (no root), `strata up --hosts` gives each host a
loopback address of its own; partitions are not possible there, everything else is the
same. The cache here is a pool of three memcached nodes: one is killed during writes.
"""

from __future__ import annotations

import signal

import pytest

from tests.scenarios.multihost.helpers import (
    an_article,
    as_sent,
    balancers,
    edges,
    post_comment,
    seconds_until_fresh,
    stack_fixture,
)

pytestmark = pytest.mark.stack


stack = stack_fixture(namespaces=False, cache="memcached")


def test_each_host_has_a_loopback_address_of_its_own(stack):
    addresses = [p.host for p in stack.programs]

    assert len(set(addresses)) == 11  # a replica, 3 memcached nodes (pgbouncer is on db1)
    assert all(a.startswith("127.0.0.") and a != "127.0.0.1" for a in addresses)
    assert all(p.netns is None for p in stack.programs)
    assert stack.config.project.env["CACHE_URL"].count(",") == 2


def test_a_write_is_fresh_through_every_edge_and_load_balancer(stack):
    host = as_sent(stack)
    article = an_article(balancers(stack)[0])
    for reader in edges(stack):
        reader.get(article, headers=host)

    words = post_comment(stack, article)

    seconds_until_fresh(edges(stack) + balancers(stack), article, words, as_sent(stack))


def test_a_cache_node_killed_during_writes_makes_misses_never_stale_pages(stack):
    host = as_sent(stack)
    article = an_article(balancers(stack)[0])
    node = stack.caches[1]
    readers = edges(stack) + balancers(stack)
    for reader in balancers(stack):
        reader.get(article, headers=host)

    node.kill(signal.SIGKILL)
    try:
        during = post_comment(stack, article)
        seconds_until_fresh(readers, article, during, as_sent(stack))
    finally:
        stack.restart(node)

    after = post_comment(stack, article)
    seconds_until_fresh(readers, article, after, as_sent(stack))
    for reader in readers:
        assert during in reader.get(article, headers=host).text
