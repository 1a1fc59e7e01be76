"""The invalidation bus against a real Redis and a real varnishd: every change is logged
with its versions, and the purger delivers the log to the accelerator, at least once."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from strata.api import invalidate_tags
from strata.bus.purger import BusPurger
from strata.bus.waiting import LogTicket
from strata.conf import strata_settings
from strata.edge.fence import EPOCH_HEADER, NODE_HEADER, READY_PATH, node_id
from strata.edge.tickets import begin_request, collect_tickets, wait_for_tickets
from strata.stack.ports import free_port
from strata.tags.changelog import EntryId, entry_id
from strata.tags.stores import version_store
from tests.edge.helpers import SECRET, poll

pytestmark = pytest.mark.stack


@pytest.fixture
def cached_page(edge):
    """``cached_page(*tags)``: a page unique to this test that carries ``tags``, in Varnish."""
    prefix = uuid.uuid4().hex[:10]
    count = iter(range(1000))

    def make(*tags: str) -> str:
        path = f"/{prefix}/{next(count)}?xkey={'+'.join(tags)}"
        assert edge.get(path)[0] == "MISS"
        assert edge.cached(path)
        return path

    return make


@pytest.fixture
def tag():
    prefix = uuid.uuid4().hex[:10]
    return lambda name: f"t{prefix}.{name}"


@pytest.fixture
def make_purger(bus_settings, edge):
    made = []

    def make(holder=None, nodes=None) -> BusPurger:
        conf = strata_settings()
        one = BusPurger(
            bus_settings, nodes or [edge.url], SECRET, conf.purge_delay, 3600, holder=holder
        )
        made.append(one)
        return one

    yield make
    for one in made:
        one.close()


def test_a_change_is_logged_with_its_versions_in_one_script(bus_settings, tag):
    store = version_store("default")
    before = store.get_with([tag("a"), tag("b")])[0]
    changed, position = store.bump_logged([tag("a"), tag("b")])
    after = store.get_with([tag("a"), tag("b")])[0]
    assert changed and position
    assert all(after[t] != before[t] and after[t] for t in after)
    entries = bus_settings.read(entry_id("0-0"), 1000)
    assert entries[-1].id == entry_id(position)
    assert sorted(entries[-1].tags) == sorted([tag("a"), tag("b")])


def test_without_the_bus_nothing_is_logged(bus_settings, settings, tag):
    settings.STRATA = {**settings.STRATA, "BUS": {"ENABLED": False}}
    changed, position = version_store("default").bump_logged([tag("a")])
    assert changed and position is None


def test_the_purger_delivers_a_change_to_the_accelerator(
    make_purger, bus_settings, cached_page, edge, tag
):
    page, other = cached_page(tag("a")), cached_page(tag("b"))
    purger = make_purger()
    purger.deliver_once()  # a first run bans the new node whole and records its position
    page, other = cached_page(tag("a")), cached_page(tag("b"))
    _, position = version_store("default").bump_logged([tag("a")])
    purger.deliver_once()
    assert not edge.cached(page)
    assert edge.cached(other)
    state = bus_settings.state()
    assert state.delivered[node_id(edge.url)] >= entry_id(position)
    assert state.attempted[node_id(edge.url)] >= entry_id(position)


def test_a_node_the_purger_never_served_is_emptied_whole_first(
    make_purger, bus_settings, cached_page, edge, tag
):
    page = cached_page(tag("untouched"))
    make_purger().deliver_once()
    assert not edge.cached(page)
    assert bus_settings.status()["stats"]["full_purges"] == 1


def test_a_node_that_missed_trimmed_entries_is_emptied_whole(
    make_purger, bus_settings, settings, cached_page, edge, tag
):
    settings.STRATA = {**settings.STRATA, "BUS": {"MAX_ENTRIES": 100}}
    purger = make_purger()
    purger.deliver_once()
    page = cached_page(tag("kept"))
    store = version_store("default")
    # The node falls behind (down, say) while the log's bound trims what it missed.
    for n in range(400):
        store.bump_logged([tag(f"w{n}")])
    assert bus_settings.state().length < 400
    assert bus_settings.missed(node_id(edge.url), 0.1)[1] is None  # just now: not yet
    time.sleep(0.2)
    assert bus_settings.missed(node_id(edge.url), 0.1)[1] is not None
    purger.deliver_once()
    assert not edge.cached(page)
    assert bus_settings.status()["stats"]["full_purges"] == 2


def test_a_second_purge_follows_the_first_after_the_delay(
    make_purger, bus_settings, cached_page, edge, tag
):
    purger = make_purger()
    purger.deliver_once()
    _, position = version_store("default").bump_logged([tag("a")])
    purger.deliver_once()
    # A page rendered before the commit reaches the node after the first purge.
    late = cached_page(tag("a"))
    time.sleep(strata_settings().purge_delay + 0.2)
    purger.deliver_once()
    assert not edge.cached(late)
    assert bus_settings.state().second[node_id(edge.url)] >= entry_id(position)


def test_only_the_lease_holder_moves_positions_and_never_backwards(
    make_purger, bus_settings, edge, tag
):
    first, second = make_purger("host-a:1"), make_purger("host-b:2")
    first.deliver_once()
    assert first.lead() and not second.lead()
    node = node_id(edge.url)
    head = bus_settings.state().head
    later, between = EntryId(head.ms + 10, 0), EntryId(head.ms + 5, 0)
    assert not bus_settings.advance("host-b:2", [("delivered", node, later)])
    assert bus_settings.state().delivered[node] == head
    assert bus_settings.advance("host-a:1", [("delivered", node, later)])
    assert bus_settings.advance("host-a:1", [("delivered", node, between)])
    assert bus_settings.state().delivered[node] == later


def test_a_standby_takes_over_when_the_holder_stops(
    make_purger, bus_settings, cached_page, edge, tag
):
    first, second = make_purger("host-a:1"), make_purger("host-b:2")
    assert first.lead()
    first.deliver_once()
    first.close()  # gives the lease up
    page = cached_page(tag("a"))
    version_store("default").bump_logged([tag("a")])
    assert second.lead()
    second.deliver_once()
    assert not edge.cached(page)


def test_a_holder_of_this_host_that_died_is_replaced_at_once(make_purger, bus_settings):
    dead = f"{socket.gethostname()}:{2**22 + 12345}"  # no such pid
    assert bus_settings.hold_lease(dead, 60) == dead
    assert make_purger().lead()


def test_a_writer_waits_until_its_change_was_tried_on_every_node(make_purger, bus_settings, tag):
    purger = make_purger()
    purger.deliver_once()
    _, position = version_store("default").bump_logged([tag("a")])
    ticket = LogTicket(bus_settings, position)
    assert not ticket.wait(0.05)  # the purger has not run
    stop = threading.Event()
    runner = threading.Thread(target=purger.run, args=(stop,))
    runner.start()
    try:
        assert ticket.wait(5)
    finally:
        stop.set()
        runner.join(5)


def test_with_no_purger_at_all_a_writer_does_not_wait(bus_settings, tag):
    _, position = version_store("default").bump_logged([tag("a")])
    started = time.monotonic()
    assert not LogTicket(bus_settings, position).wait(30)
    assert time.monotonic() - started < 5


def test_a_node_is_behind_only_when_a_change_older_than_the_limit_is_undelivered(
    make_purger, bus_settings, edge, tag
):
    node = node_id(edge.url)
    make_purger().deliver_once()
    now, missed = bus_settings.missed(node, 0.2)
    assert missed is None
    version_store("default").bump_logged([tag("a")])
    assert bus_settings.missed(node, 0.2)[1] is None  # younger than the limit
    time.sleep(0.3)
    now, missed = bus_settings.missed(node, 0.2)
    assert missed is not None and now - missed >= 200
    make_purger().deliver_once()
    assert bus_settings.missed(node, 0.2)[1] is None


def test_when_redis_loses_the_log_every_node_is_emptied_whole(
    make_purger, bus_settings, cached_page, edge, tag
):
    purger = make_purger()
    purger.deliver_once()
    page = cached_page(tag("a"))
    # Redis restarted empty: the log, the identity and the positions are gone.
    bus_settings.client.delete(
        bus_settings.log_key,
        bus_settings.identity_key,
        bus_settings.delivered_key,
        bus_settings.attempted_key,
        bus_settings.second_key,
    )
    purger.deliver_once()
    assert not edge.cached(page)


def test_the_status_names_the_nodes_positions_and_counters(make_purger, bus_settings, edge, tag):
    purger = make_purger()
    purger.deliver_once()
    version_store("default").bump_logged([tag("a"), tag("b")])
    status = bus_settings.status()
    node = status["nodes"][node_id(edge.url)]
    assert node["behind"] == 1 and node["lag"] is not None
    purger.deliver_once()
    status = bus_settings.status()
    assert status["nodes"][node_id(edge.url)]["behind"] == 0
    assert status["stats"]["tags"] >= 2 and status["length"] >= 1
    assert status["lease"]["holder"] == purger.holder


def test_positions_recorded_under_another_log_are_void(
    make_purger, bus_settings, cached_page, edge, tag
):
    """A failover (or any loss) that keeps the positions but not the entries behind them:
    the log's identity changed, so the node starts over with a full purge."""
    purger = make_purger()
    purger.deliver_once()
    page = cached_page(tag("a"))
    bus_settings.client.set(bus_settings.identity_key, "another:1")
    purger.deliver_once()
    assert not edge.cached(page)
    assert bus_settings.status()["stats"]["full_purges"] == 2


def test_a_request_that_wrote_collects_the_ticket_of_its_logged_change(bus_settings, tag):
    begin_request()
    try:
        invalidate_tags(tag("a"))
        invalidate_tags(tag("b"))
        (ticket,) = collect_tickets()  # the newest covers the first
    finally:
        wait_for_tickets(0)
    assert isinstance(ticket, LogTicket)
    assert ticket.position == bus_settings.state().head


def test_the_readiness_check_follows_the_log(
    make_purger, bus_settings, settings, client, edge, tag
):
    settings.STRATA = {**settings.STRATA, "BUS": {"FENCE_AFTER": 0.2}}
    node = node_id(edge.url)

    def ready() -> tuple[int, str]:
        answer = client.get(READY_PATH, headers={NODE_HEADER: node, EPOCH_HEADER: "1"})
        return answer.status_code, answer["X-Strata-Fence"]

    make_purger().deliver_once()
    assert ready() == (200, "clear")
    invalidate_tags(tag("a"))
    time.sleep(0.3)
    assert ready() == (503, "owed")
    born_after = client.get(
        READY_PATH, headers={NODE_HEADER: node, EPOCH_HEADER: repr(time.time())}
    )
    assert born_after.status_code == 200  # a cache younger than the change holds nothing older
    make_purger().deliver_once()
    assert ready() == (200, "clear")


def test_a_node_that_fails_is_retried_fenced_and_does_not_hold_writers(
    make_purger, bus_settings, edge, tag
):
    dead = f"http://127.0.0.1:{free_port(set())}"
    purger = make_purger(nodes=[edge.url, dead])
    stop = threading.Event()
    runner = threading.Thread(target=purger.run, args=(stop,))
    runner.start()
    try:
        assert poll(lambda: node_id(edge.url) in bus_settings.state().delivered, 5)
        _, position = version_store("default").bump_logged([tag("a")])
        started = time.monotonic()
        assert not LogTicket(bus_settings, position).wait(5)  # tried everywhere, not delivered
        assert time.monotonic() - started < 2
        assert bus_settings.state().delivered[node_id(edge.url)] >= entry_id(position)
        time.sleep(0.3)
        assert bus_settings.missed(node_id(dead), 0.2)[1] is not None
        assert bus_settings.missed(node_id(edge.url), 0.2)[1] is None
        stats = bus_settings.status()["stats"]
        assert stats["failures"] >= 2 and stats["last_failure"]
    finally:
        stop.set()
        runner.join(5)


def test_a_log_evicted_alone_is_a_lost_log(make_purger, bus_settings, cached_page, edge, tag):
    """Eviction may take the stream and leave the positions: a new log is a new identity."""
    purger = make_purger()
    purger.deliver_once()
    page = cached_page(tag("a"))
    bus_settings.client.delete(bus_settings.log_key)
    version_store("default").bump_logged([tag("b")])  # the log starts again
    purger.deliver_once()
    assert not edge.cached(page)
    assert bus_settings.status()["stats"]["full_purges"] == 2


def test_a_node_that_hangs_holds_back_neither_the_others_nor_the_writers(
    make_purger, bus_settings, cached_page, edge, tag
):
    """A node cut off by a partition (connections accepted, never answered) is fenced;
    the other nodes' positions move on as fast as ever."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", free_port(set())))
        silent.listen(64)  # accepts connections into the backlog, never answers
        hanging = f"http://127.0.0.1:{silent.getsockname()[1]}"
        purger = make_purger(nodes=[edge.url, hanging])
        stop = threading.Event()
        runner = threading.Thread(target=purger.run, args=(stop,))
        runner.start()
        try:
            assert poll(lambda: node_id(edge.url) in bus_settings.state().delivered, 5)
            for n in range(3):
                page = cached_page(tag(f"p{n}"))
                _, position = version_store("default").bump_logged([tag(f"p{n}")])
                started = time.monotonic()
                assert not LogTicket(bus_settings, position).wait(5)  # not on every node
                assert time.monotonic() - started < 1  # yet no wait for the one that hangs
                assert not edge.cached(page)
                assert bus_settings.state().delivered[node_id(edge.url)] >= entry_id(position)
            assert bus_settings.missed(node_id(edge.url), 0.2)[1] is None
            time.sleep(0.3)
            assert bus_settings.missed(node_id(hanging), 0.2)[1] is not None
        finally:
            stop.set()
            runner.join(10)
