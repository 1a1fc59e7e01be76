"""The demo spread over hosts (`strata up --hosts 2`): every host a network namespace.

Two load balancers, two Varnish hosts, two app hosts, a cache host and a database host,
joined by a private bridge. The tests send traffic through both load balancers, write on
one app host, and cut a Varnish host off the network while writes go on.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.replicas.helpers import set_apply_delay, wait_caught_up
from tests.scenarios.multihost.helpers import (
    an_article,
    as_sent,
    balancers,
    edges,
    post_comment,
    requests_per_server,
    seconds_until_fresh,
    stack_fixture,
    x_cache,
)

pytestmark = pytest.mark.stack


stack = stack_fixture()


def network_namespace(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def test_every_host_runs_in_a_network_namespace_of_its_own(stack):
    programs = stack.programs
    namespaces = {network_namespace(p.pid) for p in programs}
    addresses = {p.host for p in programs}

    # db1 (PostgreSQL + pgbouncer), db2 (replica), cache, 2 app (each with its purger),
    # 2 edge, 2 load balancers, and the exporters of the 2 edge nodes, the cache and the database
    assert len(programs) == 16
    assert len(namespaces) == len(addresses) == 9
    assert stack.pooler.netns == stack.database.netns
    assert network_namespace(os.getpid()) not in namespaces
    assert all(p.host.startswith("10.213.") for p in programs)


def test_traffic_through_both_load_balancers_reaches_every_edge_and_app_host(stack):
    before_edges = requests_per_server(stack, "accelerators")
    before_apps = requests_per_server(stack, "app_pool")
    readers = balancers(stack)

    for i in range(40):
        answer = readers[i % 2].get(f"/?spread={i}", headers=as_sent(stack))
        assert answer.status == 200

    edges_now = requests_per_server(stack, "accelerators")
    apps_now = requests_per_server(stack, "app_pool")
    for edge in ("varnish1", "varnish2"):
        assert edges_now[edge] - before_edges.get(edge, 0) >= 10, edges_now
    for app in ("app1", "app2"):
        assert apps_now[app] - before_apps.get(app, 0) >= 5, apps_now


def test_a_write_on_one_app_host_is_fresh_through_every_edge_and_load_balancer(stack):
    host = as_sent(stack)
    article = an_article(balancers(stack)[0])
    for edge in edges(stack):
        edge.get(article, headers=host)
        assert x_cache(edge.get(article, headers=host)) == "HIT"

    words = post_comment(stack, article)

    readers = edges(stack) + balancers(stack)
    seconds_until_fresh(readers, article, words, as_sent(stack))
    for reader in readers:
        assert words in reader.get(article, headers=host).text


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


def edge_state(stack, name: str) -> set[str]:
    return {lb.server_states("accelerators").get(name, "?") for lb in stack.load_balancers}


def test_an_edge_cut_off_during_writes_serves_nothing_stale_when_it_returns(stack):
    host = as_sent(stack)
    article = an_article(balancers(stack)[0])
    cut_off = edges(stack)[1]
    cut_off.get(article, headers=host)
    assert x_cache(cut_off.get(article, headers=host)) == "HIT"

    stack.network.partition("edge2")
    try:
        wait_for(lambda: edge_state(stack, "varnish2") == {"DOWN"}, 15, "varnish2 marked down")
        written = [post_comment(stack, article) for _ in range(3)]
        seconds_until_fresh(balancers(stack), article, written[-1], as_sent(stack))
        # Past the purger's quick retries: its next one comes seconds after the heal,
        # later than the load balancer's checks would let the node back by themselves.
        time.sleep(8)
    finally:
        stack.network.heal("edge2")

    # Read through both load balancers while edge2 comes back, and for a while after.
    seen_back, not_fresh = None, []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for reader in balancers(stack):
            answer = reader.get(article, headers=host)
            if written[-1] not in answer.text:
                not_fresh.append(
                    (
                        round(time.monotonic() - deadline + 30, 2),
                        answer.status,
                        x_cache(answer),
                        sorted(edge_state(stack, "varnish2")),
                        answer.text[:80],
                    )
                )
        if seen_back is None and edge_state(stack, "varnish2") == {"UP"}:
            seen_back = time.monotonic()
        if seen_back is not None and time.monotonic() - seen_back > 3:
            break
    assert seen_back is not None, "varnish2 never came back"
    assert not_fresh == [], (len(not_fresh), not_fresh[:3], not_fresh[-3:])
    assert written[-1] in cut_off.get(article, headers=host).text


def test_a_lagging_replica_serves_nothing_stale_through_the_caches(stack):
    host = as_sent(stack)
    article = an_article(balancers(stack)[0])
    readers = edges(stack) + balancers(stack)
    for reader in readers:
        reader.get(article, headers=host)
    writer = balancers(stack)[0]

    set_apply_delay(stack.replica, "4s")
    try:
        words = post_comment(stack, article, writer)
        # The others first: once the writer has read its page from the primary, the query
        # results it stored are current, and the others get them from the cache (fresh).
        lagging = [words not in reader.get(article, headers=host).text for reader in readers]
        own = writer.get(article, headers=host)
    finally:
        set_apply_delay(stack.replica, "0")
    wait_caught_up(stack.database, stack.replica)

    assert words in own.text  # the writer reads from the primary
    assert any(lagging)  # the others read the replica, which had not replayed it
    for reader in readers:
        assert words in reader.get(article, headers=host).text  # nothing stale was stored
