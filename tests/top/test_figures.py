"""The figures of each tier between two readings: req/s, hit ratio, p50/p99, health."""

from __future__ import annotations

import pytest

from strata.top.model import Answer, Health, compare, timing_totals
from strata.top.report import Watch, hit_ratio_lines, hit_ratios
from tests.top.figures import (
    HAPROXY_SOURCE,
    METRICS_URL,
    VARNISH_SOURCE,
    App,
    reading,
    show_stat,
)


def varnish(requests: int, hits: int, misses: int, objects: int = 7) -> Answer:
    counters = {"client_req": requests, "cache_hit": hits, "cache_miss": misses}
    return Answer(VARNISH_SOURCE, {**counters, "n_object": objects})


def test_the_accelerators_rate_and_hit_ratio_come_from_its_counter_changes():
    before = reading(10.0, varnish={"varnish1": varnish(100, 50, 50)})
    after = reading(12.0, varnish={"varnish1": varnish(300, 240, 60)})
    (row,) = compare(before, after).tier("accelerator")
    assert row.up and row.rps == 100
    assert row.hit_ratio == pytest.approx(190 / 200)
    assert row.source == VARNISH_SOURCE
    assert "7 objects" in row.note


def test_the_accelerators_rate_is_what_haproxy_sent_it_when_haproxy_is_read():
    # Varnish adds up a busy connection's counters late; HAProxy's count is current.
    before = reading(
        0.0,
        varnish={"varnish1": varnish(100, 50, 50)},
        haproxy={"haproxy": Answer(HAPROXY_SOURCE, show_stat(1000))},
    )
    after = reading(
        1.0,
        varnish={"varnish1": varnish(110, 60, 50)},
        haproxy={"haproxy": Answer(HAPROXY_SOURCE, show_stat(1500))},
    )
    (row,) = compare(before, after).tier("accelerator")
    assert row.rps == 500
    assert row.hit_ratio == pytest.approx(10 / 10)
    assert "as HAProxy sent them" in row.note


def test_a_varnish_that_restarted_shows_no_rate_rather_than_a_negative_one():
    before = reading(10.0, varnish={"varnish1": varnish(300, 240, 60)})
    after = reading(11.0, varnish={"varnish1": varnish(5, 1, 4)})
    (row,) = compare(before, after).tier("accelerator")
    assert row.rps is None and row.hit_ratio is None


def test_the_load_balancer_counts_public_requests_and_servers_up():
    before = reading(0.0, haproxy={"haproxy": Answer(HAPROXY_SOURCE, show_stat(1000))})
    after = reading(0.5, haproxy={"haproxy": Answer(HAPROXY_SOURCE, show_stat(1100, fivexx=2))})
    (row,) = compare(before, after).tier("load balancer")
    assert row.rps == 200
    assert "accelerators 1/1 up" in row.note  # pool-direct has no check: not counted
    assert "app pool 1/2 up" in row.note
    assert "4.0 5xx/s" in row.note


def test_a_source_that_does_not_answer_is_shown_down_with_why():
    down = Answer(VARNISH_SOURCE, error="varnishstat -n /run/varnish1: no counters")
    figures = compare(
        reading(0.0, varnish={"varnish1": varnish(1, 1, 0)}),
        reading(1.0, varnish={"varnish1": down}),
    )
    (row,) = figures.tier("accelerator")
    assert not row.up
    assert "no counters" in row.note


def test_the_app_servers_page_cache_hit_ratio_and_latency_come_from_metrics():
    app = App()
    app.serve("page-miss", 0.05, times=2)
    before = reading(0.0, metrics={"app1": app.answer()})
    app.serve("page-hit", 0.0005, times=6)
    app.serve("page-stale", 0.0005, times=2)
    app.serve("page-miss", 0.05, times=2)
    app.serve("bypass", 0.5, times=10)
    after = reading(2.0, metrics={"app1": app.answer()})
    (row,) = compare(before, after).tier("app server")
    assert row.rps == 10  # 20 requests in 2 s
    assert row.hit_ratio == pytest.approx(8 / 10)  # bypasses are not lookups
    # 8 of 20 under 1 ms, 2 more under 100 ms (half done), 10 under 1 s.
    assert row.p50_ms == pytest.approx(100)
    assert row.p99_ms == pytest.approx(100 + 900 * 9.8 / 10)
    assert row.source == METRICS_URL


def test_several_app_servers_also_get_a_row_for_all_of_them():
    one, two = App(), App()
    before = reading(
        0.0, metrics={"app1": one.answer(), "app2": two.answer("http://127.0.0.1:8102/-/metrics")}
    )
    one.serve("page-hit", 0.001, times=3)
    two.serve("page-miss", 0.001, times=1)
    after = reading(
        1.0, metrics={"app1": one.answer(), "app2": two.answer("http://127.0.0.1:8102/-/metrics")}
    )
    rows = {row.name: row for row in compare(before, after).tier("app server")}
    assert set(rows) == {"app1", "app2", "all"}
    assert rows["all"].rps == 4
    assert rows["all"].hit_ratio == pytest.approx(3 / 4)


def test_query_cache_purges_and_bus_lag_come_from_the_app_servers_metrics():
    app = App()
    before = reading(0.0, metrics={"app1": app.answer()})
    app.query.labels("hit").inc(90)
    app.query.labels("miss").inc(10)
    app.purges.labels("varnish1", "sent").inc(4)
    for seconds in (0.002, 0.003, 0.004, 0.05):
        app.purge_duration.labels("varnish1").observe(seconds)
    app.lag.labels("varnish1").set(0.25)
    after = reading(1.0, metrics={"app1": app.answer()})
    figures = compare(before, after)
    (query,) = figures.tier("query cache")
    assert query.hit_ratio == pytest.approx(0.9)
    (purges,) = figures.tier("purges")
    assert purges.rps == 4
    assert 1 < purges.p50_ms <= 10 and 10 < purges.p99_ms <= 100
    (bus,) = figures.tier("bus")
    assert "lag 0.25 s" in bus.note


TIMING = {
    "buckets_ms": [1, 10, 100],
    "raw": {
        "home": {
            "page-hit": {"count": 6, "histogram": [6, 0, 0, 0]},
            "rendered": {"count": 4, "histogram": [0, 1, 2, 1]},
        }
    },
    "purges": {"requests": 3, "failures": 0, "waiting_retry": 0},
    "bus": {
        "length": 12,
        "lease": {"holder": "vm:1", "ttl": 2.0},
        "nodes": {"127.0.0.1:8080": {"behind": 2, "lag": 0.4}},
    },
}


def test_timing_json_is_summed_over_views_and_kinds_into_cumulative_buckets():
    totals = timing_totals(TIMING)
    assert totals["requests"] == 10 and totals["hits"] == 6
    assert [count for _, count in totals["buckets"]] == [6, 7, 9, 10]


def test_without_metrics_the_app_tier_and_the_bus_come_from_timing_json():
    empty = {**TIMING, "raw": {}, "purges": {"requests": 0}}
    not_served = Answer(METRICS_URL, error=f"{METRICS_URL} answered 404")
    before = reading(0.0, metrics={"app1": not_served}, timing=Answer("t", empty))
    after = reading(2.0, metrics={"app1": not_served}, timing=Answer("t", TIMING))
    figures = compare(before, after)
    rows = {row.name: row for row in figures.tier("app server")}
    assert rows["app1"].up  # it answered, without figures
    assert rows["all"].rps == 5 and rows["all"].hit_ratio == pytest.approx(0.6)
    (bus,) = figures.tier("bus")
    assert "2 behind" in bus.note and "lag 0.40 s" in bus.note and "vm:1" in bus.note


def test_the_programs_health_is_passed_through():
    health = [Health("redis", "cache", "Redis", False, "pid 7 is gone")]
    figures = compare(reading(0.0), reading(1.0, health=health))
    assert figures.health == health


def test_the_reports_hit_ratios_name_each_cache_and_where_it_was_read():
    app = App()
    before = reading(0.0, varnish={"varnish1": varnish(0, 0, 0)}, metrics={"app1": app.answer()})
    app.serve("page-hit", 0.001, times=3)
    app.serve("page-miss", 0.001, times=1)
    after = reading(5.0, varnish={"varnish1": varnish(100, 99, 1)}, metrics={"app1": app.answer()})
    data = hit_ratios(before, after)
    assert data["accelerator"][0]["hit_ratio"] == 0.99
    assert data["page_cache"][0] == {
        "name": "app1",
        "up": True,
        "hit_ratio": 0.75,
        "hits": 3,
        "lookups": 4,
        "requests": 4,
        "source": METRICS_URL,
    }
    lines = hit_ratio_lines(data)
    assert "accelerator hits: varnish1 99.0% (99 of 100)" in lines
    assert "page-cache hits: app1 75.0% (3 of 4)" in lines
    assert lines[-1] == f"read from {METRICS_URL}, {VARNISH_SOURCE}"


def test_a_watch_whose_reading_fails_gives_no_ratios_instead_of_failing_the_report():
    def broken():
        raise RuntimeError("the state file vanished")

    watch = Watch(broken, settle=0)
    watch.start()
    assert watch.stop() is None


def test_the_app_tier_leaves_out_the_requests_strata_top_itself_sends():
    app = App()
    before = reading(0.0, metrics={"app1": app.answer()})
    app.serve("page-hit", 0.001, times=4)
    app.serve("bypass", 0.5, times=3, view="strata.metrics.views.metrics")
    after = reading(1.0, metrics={"app1": app.answer()})
    (row,) = compare(before, after).tier("app server")
    assert row.rps == 4
    assert row.p99_ms < 10
