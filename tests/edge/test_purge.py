"""The purge client against a real varnishd with the xkey vmod and the real VCL.

One varnishd per module, in front of a tiny origin whose pages carry the ``xkey`` tags
named in their query string (``/page?xkey=a+b``) and count how often they are fetched.
``X-Cache`` tells whether Varnish answered from its cache.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

import pytest

from strata.edge.purge import MAX_KEY_BYTES, Purger, purger, reset_purger
from strata.edge.tickets import (
    begin_request,
    collect_tickets,
    purge_after_invalidations,
    purge_tags,
    wait_for_tickets,
)
from strata.signals import post_invalidation
from strata.stack.ports import free_port
from strata.stack.probes import http_get
from tests.edge.helpers import (
    HOST,
    IDLE_TIMEOUT,
    LOOPBACK,
    SECRET,
    Forwarder,
    poll,
    running_edge,
)

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def edge():
    with running_edge() as running:
        yield running


@pytest.fixture
def make_purger(edge):
    """Purgers for this test (secret and node default to the running Varnish)."""
    made: list[Purger] = []

    def make(nodes=None, secret=SECRET, delay=60.0, **kwargs) -> Purger:
        one = Purger(nodes or [edge.url], secret, delay, **kwargs)
        made.append(one)
        return one

    yield make
    for one in made:
        one.close(timeout=2)


@pytest.fixture
def cached_page(edge):
    """``cached_page(name, *tags)``: a path unique to this test whose page carries ``tags``,
    fetched once so that Varnish has it."""
    prefix = uuid.uuid4().hex[:10]

    def make(name: str, *tags: str) -> str:
        path = f"/{prefix}/{name}?xkey={'+'.join(tags)}"
        assert edge.get(path)[0] == "MISS"
        assert edge.cached(path)
        return path

    return make


@pytest.fixture
def tag():
    """``tag(name)``: a tag name unique to this test."""
    prefix = uuid.uuid4().hex[:10]
    return lambda name: f"t{prefix}.{name}"


@pytest.fixture(autouse=True)
def no_request_scope_left_behind():
    yield
    wait_for_tickets(0)


def test_purging_a_tag_drops_exactly_the_pages_that_carry_it(edge, make_purger, cached_page, tag):
    article = cached_page("article", tag("article"), tag("comment"))
    listing = cached_page("listing", tag("article"))
    other = cached_page("other", tag("author"))
    purge = make_purger()

    assert purge.purge({tag("article")}).wait(5)

    assert edge.get(article)[0] == "MISS"
    assert edge.get(listing)[0] == "MISS"
    assert edge.cached(other)
    assert purge.stats["objects"] == 2
    assert purge.stats["failures"] == 0


def test_a_hit_carries_no_tag_header_and_its_xkey_tags_still_purge(
    edge, make_purger, cached_page, tag
):
    # Surrogate-Key is dropped before the copy is stored; xkey stays in it, for the vmod.
    path = cached_page("tagged", tag("article"))
    hit = http_get(LOOPBACK, edge.port, path, headers={"Host": HOST})
    assert hit.headers.get("x-cache") == "HIT"
    assert "xkey" not in hit.headers and "surrogate-key" not in hit.headers

    assert make_purger().purge({tag("article")}).wait(5)
    assert edge.get(path)[0] == "MISS"


def test_a_page_cached_after_the_first_purge_is_dropped_by_the_second(
    edge, make_purger, cached_page, tag
):
    path = cached_page("article", tag("article"))
    purge = make_purger(delay=1.0)

    assert purge.purge([tag("article")]).wait(5)
    # A page rendered from the old data before the commit arrives after the first purge.
    assert edge.get(path)[0] == "MISS"
    assert edge.cached(path)

    assert poll(lambda: purge.stats["second_purges"] >= 1)
    assert edge.get(path)[0] == "MISS"
    assert edge.origin.fetches[path] == 3


def test_a_purge_with_the_wrong_secret_is_refused_and_the_page_stays(
    edge, make_purger, cached_page, tag, caplog
):
    caplog.set_level(logging.WARNING, logger="strata.edge")
    path = cached_page("article", tag("article"))
    purge = make_purger(secret="not-the-secret")

    assert purge.purge({tag("article")}).wait(5) is False

    assert edge.cached(path)
    assert purge.stats["refused"] == 1
    assert purge.stats["retries"] == 0  # a refusal does not heal by itself
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "403" in errors[0].getMessage()


def test_a_node_that_is_down_is_retried_logged_and_given_up_without_raising(
    edge, make_purger, cached_page, tag, caplog
):
    caplog.set_level(logging.WARNING, logger="strata.edge")
    path = cached_page("article", tag("article"))
    down = f"http://{LOOPBACK}:{free_port(set())}"
    purge = make_purger(nodes=[edge.url, down], retries=2, timeout=0.5)

    ticket = purge.purge({tag("article")})

    assert ticket.wait(5) is False
    assert edge.get(path)[0] == "MISS"  # the node that is up purged it anyway
    assert poll(lambda: purge.stats["given_up"] >= 1)
    assert purge.stats["retries"] == 2
    assert purge.stats["given_up"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(warnings) == 2 and all(down in message for message in warnings)
    assert len(errors) == 1 and down in errors[0]


def test_a_node_that_comes_back_gets_the_purge_it_missed_while_the_pages_could_live(
    edge, make_purger, cached_page, tag
):
    path = cached_page("article", tag("article"))
    later = Forwarder(free_port(set()), (LOOPBACK, edge.port))
    purge = make_purger(nodes=[f"http://{LOOPBACK}:{later.port}"], retries=1, keep_trying=60)

    assert purge.purge({tag("article")}).wait(5) is False  # the node is down
    assert edge.get(path)[0] == "HIT"
    assert poll(lambda: purge.stats["retries"] >= 3)  # past the quick retries
    later.start()
    try:
        assert poll(lambda: purge.stats["purged"] >= 1, timeout=15)
    finally:
        later.stop()

    assert edge.get(path)[0] == "MISS"
    status = purge.status()
    assert status["given_up"] == 0
    assert status["last_failure"]["node"] == f"http://{LOOPBACK}:{later.port}"


def test_waiting_for_a_node_that_hangs_ends_at_the_timeout(make_purger, tag):
    with socket.socket() as silent:
        silent.bind((LOOPBACK, free_port(set())))
        silent.listen(8)  # accepts connections into the backlog, never answers
        purge = make_purger(
            nodes=[f"http://{LOOPBACK}:{silent.getsockname()[1]}"], retries=0, timeout=0.5
        )

        ticket = purge.purge({tag("article")})

        assert ticket.wait(0.05) is False
        assert ticket.wait(10) is False
        assert ticket.done
        assert purge.stats["failures"] == 1


def test_a_node_that_hangs_does_not_hold_back_the_purge_of_the_others(
    edge, make_purger, cached_page, tag
):
    path = cached_page("article", tag("article"))
    with socket.socket() as silent:
        silent.bind((LOOPBACK, free_port(set())))
        silent.listen(8)  # accepts connections into the backlog, never answers
        hanging = f"http://{LOOPBACK}:{silent.getsockname()[1]}"
        purge = make_purger(nodes=[hanging, edge.url], retries=0, timeout=5)

        purge.purge({tag("article")})

        assert poll(lambda: edge.get(path)[0] == "MISS", timeout=4)
        assert purge.stats["failures"] == 0  # the hanging node's attempt is still running
        assert poll(lambda: purge.stats["failures"] == 1, timeout=10)


def test_a_batch_bigger_than_the_header_limit_is_split_and_purges_everything(
    edge, make_purger, cached_page, tag
):
    tags = [tag(f"row-{i:04d}-{'x' * 24}") for i in range(400)]
    assert len(" ".join(tags)) > 3 * MAX_KEY_BYTES
    first, middle, last = (
        cached_page("a", tags[0]),
        cached_page("b", tags[200]),
        cached_page("c", tags[-1]),
    )
    other = cached_page("other", tag("author"))
    purge = make_purger()

    assert purge.purge(tags).wait(5)

    assert purge.stats["requests"] >= 4
    assert purge.stats["objects"] == 3
    assert [edge.get(path)[0] for path in (first, middle, last)] == ["MISS"] * 3
    assert edge.cached(other)


def test_purges_enqueued_quickly_go_out_in_fewer_requests(edge, make_purger, cached_page, tag):
    first, last = cached_page("first", tag("row-0")), cached_page("last", tag("row-29"))
    purge = make_purger()

    tickets = [purge.purge({tag(f"row-{i}")}) for i in range(30)]

    assert all(ticket.wait(5) for ticket in tickets)
    assert purge.stats["requests"] < len(tickets)
    assert edge.get(first)[0] == "MISS"
    assert edge.get(last)[0] == "MISS"


def test_an_idle_connection_the_node_closed_is_reopened_without_a_failure(
    edge, make_purger, cached_page, tag
):
    path = cached_page("article", tag("article"))
    purge = make_purger()
    assert purge.purge({tag("warm-up")}).wait(5)
    time.sleep(IDLE_TIMEOUT + 0.5)  # Varnish closes the idle keep-alive connection

    assert purge.purge({tag("article")}).wait(5)

    assert edge.get(path)[0] == "MISS"
    assert purge.stats["failures"] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
def test_a_forked_child_starts_its_own_worker_and_purges(edge, make_purger, cached_page, tag):
    parent_page, child_page = (
        cached_page("parent", tag("parent")),
        cached_page("child", tag("child")),
    )
    purge = make_purger()
    assert purge.purge({tag("warm-up")}).wait(5)  # the parent's worker runs

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if purge.purge({tag("child")}).wait(5) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert edge.get(child_page)[0] == "MISS"
    assert purge.purge({tag("parent")}).wait(5)  # the parent's worker still serves it
    assert edge.get(parent_page)[0] == "MISS"


def test_a_soft_purge_serves_the_old_copy_once_while_it_fetches_the_new(
    edge, make_purger, cached_page, tag
):
    path = cached_page("article", tag("article"))
    purge = make_purger()

    assert purge.purge({tag("article")}, soft=True).wait(5)

    assert edge.get(path) == ("HIT", "/" + path.split("/")[1] + "/article fetch 1")
    assert poll(lambda: edge.origin.fetches[path] == 2)
    assert poll(lambda: edge.get(path)[1].endswith("fetch 2"))


def test_purge_tags_does_nothing_without_accelerators(settings, tag):
    settings.STRATA = {**settings.STRATA, "ACCELERATORS": []}

    assert purger() is None
    assert purge_tags({tag("article")}) is None


@pytest.fixture
def configured(settings, edge):
    """STRATA names the running Varnish."""
    settings.STRATA = {
        **settings.STRATA,
        "ACCELERATORS": [edge.url],
        "PURGE_SECRET": SECRET,
        "PURGE_DELAY": 60.0,
    }
    yield
    reset_purger()


def test_a_committed_invalidation_purges_the_accelerator_once_installed(
    configured, edge, cached_page, tag
):
    path = cached_page("article", tag("article"))
    purge_after_invalidations()
    begin_request()

    post_invalidation.send(None, tags=frozenset({tag("article")}), using="default", changed=True)

    assert len(collect_tickets()) == 1
    assert wait_for_tickets(5)
    assert edge.get(path)[0] == "MISS"


def test_tickets_are_collected_only_inside_a_request(configured, tag):
    assert purge_tags({tag("outside")}).wait(5)
    assert collect_tickets() == []

    begin_request()
    ticket = purge_tags({tag("inside")})
    assert collect_tickets() == [ticket]
    assert wait_for_tickets(5)

    assert collect_tickets() == []  # the request is over
    purge_tags({tag("after")})
    assert collect_tickets() == []


def test_the_purger_follows_the_settings(configured, settings, edge):
    first = purger()
    assert purger() is first

    settings.STRATA = {**settings.STRATA, "PURGE_SECRET": "rotated"}

    assert purger() is not first
    assert purger().secret == "rotated"
