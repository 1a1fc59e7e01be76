"""``/-/metrics`` through the real stack (``strata up``: HAProxy, Varnish, two app servers
of two workers, Redis, PostgreSQL, the bus's purger): outsiders are refused through the
load balancer, nothing caches the page, and its numbers move as requests are made.

One stack for the module (about 10 s to start); the tests take seconds.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from strata.httpclient import csrf_token
from tests.helpers import Client, demo_stack, poll
from tests.metrics.conftest import Scrape
from tests.scenarios.bus.helpers import articles, through_lb

pytestmark = pytest.mark.stack

OUTSIDE = "203.0.113.9"


@pytest.fixture(scope="module")
def stack():
    with demo_stack() as the_stack:
        yield the_stack


def scrape_apps(stack) -> Scrape:
    """Every app server's ``/-/metrics``, asked directly (as Prometheus does), summed."""
    texts = []
    for app in stack.app_servers:
        answer = Client(app.host, app.port, timeout=10).get("/-/metrics")
        assert answer.status == 200, answer.text[:300]
        texts.append(answer.text)
    summed = Scrape("")
    for text in texts:
        for key, value in Scrape(text).samples.items():
            summed.samples[key] = summed.samples.get(key, 0.0) + value
    return summed


def test_an_outsider_is_refused_through_the_load_balancer(stack):
    lb = through_lb(stack)

    # The stack passes the client's X-Forwarded-For on, adding the hops it went through.
    refused = lb.get("/-/metrics", headers={"X-Forwarded-For": OUTSIDE})

    assert refused.status == 403
    assert b"strata_requests_total" not in refused.body
    assert "no-store" in refused.getheader("Cache-Control", "")


def test_no_cache_of_the_stack_keeps_the_page(stack):
    lb = through_lb(stack)

    first = lb.get("/-/metrics")
    second = lb.get("/-/metrics")

    assert first.status == second.status == 200
    assert "no-store" in first.getheader("Cache-Control", "")
    assert second.getheader("X-Cache") != "HIT"  # Varnish passed it to the app again
    assert not second.getheader("X-Strata", "").startswith(("page-hit", "edge-"))
    # Each is itself a request the app counted: the page moved between the two.
    assert first.body != second.body
    text_string_to_metric_families(second.text)  # parses


def test_hits_and_a_write_move_the_numbers_on_the_stack(stack):
    (_, path), *_ = articles(stack, count=1)
    app = stack.app_servers[0]
    direct = Client(app.host, app.port, timeout=10)  # past Varnish: the app's own page hits
    as_lb = {"Host": f"{stack.config.host}:{stack.config.port}", "X-Forwarded-Proto": "http"}
    reader = through_lb(stack)
    reader.login("reader1")
    before = scrape_apps(stack)

    for _ in range(3):  # the first may render; the others are page hits
        direct.get(path, headers=as_lb)
    token = csrf_token(reader.get(path).text)
    posted = reader.post_form(path, {"body": "counted", "csrfmiddlewaretoken": token})
    assert posted.status in (200, 302), posted.status

    def grown(after: Scrape, name: str, **labels: str) -> float:
        return after.total(name, **labels) - before.total(name, **labels)

    def moved() -> Scrape | None:
        after = scrape_apps(stack)
        purged = [
            grown(after, "strata_purges_total", accelerator=node, result="sent")
            for node in accelerator_ids(after)
        ]
        done = (
            grown(after, "strata_requests_total", outcome="page-hit") >= 2
            and grown(after, "strata_invalidations_total") >= 1
            # Counted by the query cache, moved into the metrics within a second:
            and grown(after, "strata_query_cache_total", result="invalidate") >= 1
            and len(purged) == len(stack.accelerators)
            and all(purged)
        )
        return after if done else None

    after = poll(moved, 15.0)
    assert after, "the numbers did not move"
    assert grown(after, "strata_invalidated_tags_total") >= 1
    assert grown(after, "strata_query_cache_total", result="invalidate") >= 1
    for node in accelerator_ids(after):
        assert after.value("strata_fence_owed", accelerator=node) == 0
        assert after.total("strata_bus_lag_entries", accelerator=node) >= 0


def accelerator_ids(scrape: Scrape) -> set[str]:
    """The accelerators named in the purge counters."""
    return {
        dict(labels)["accelerator"]
        for name, labels in scrape.samples
        if name == "strata_purges_total"
    }
