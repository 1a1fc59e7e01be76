"""A memcached host of a pool cut off during writes, then let back with its old values.

The hosts are network namespaces; the pool has three memcached hosts. While ``cache2`` is
cut off, writes bump tag versions on the two others; when it comes back it still holds
the versions from before: with Strata's pool store a tag's copies disagree and the tag
is a miss, never a stale hit (docs/cache-pool.md). This is the whole site through both
load balancers on a real partition; which process uses the returning node when is up to
timing here, so the exact ABA sequence (and Django's stock pool failing it) is pinned
down in tests/tags/pool/.
"""

from __future__ import annotations

import time

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


stack = stack_fixture(cache="memcached")


def test_a_cache_host_back_with_old_values_makes_nothing_stale(stack):
    host = as_sent(stack)
    readers = edges(stack) + balancers(stack)
    article = an_article(balancers(stack)[0])
    for reader in readers:
        reader.get(article, headers=host)
    assert len(stack.caches) == 3

    stack.network.partition("cache2")
    try:
        written = [post_comment(stack, article) for _ in range(2)]
        seconds_until_fresh(readers, article, written[-1], host, timeout=20)
    finally:
        stack.network.heal("cache2")

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for reader in readers:
            answer = reader.get(article, headers=host)
            assert answer.status == 200
            assert written[-1] in answer.text
    after = post_comment(stack, article)
    seconds_until_fresh(readers, article, after, host)
