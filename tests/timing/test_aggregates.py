"""Per-view figures: summed per process, written to the cache, merged across processes."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import Client

from strata.conf import strata_settings
from strata.timing import aggregates
from strata.timing.aggregates import (
    BUCKETS_MS,
    PROCESS_PREFIX,
    REGISTRY_KEY,
    read_all,
    summarize,
)
from tests.timing.conftest import SECRET

ARTICLE = "newsroom.views.article_detail"


@pytest.fixture
def cache():
    return caches[strata_settings().cache_alias]


def test_figures_are_flushed_and_read_back_per_view_and_kind(newsroom, strata_with):
    strata_with(TIMING={"FLUSH_INTERVAL": 0}, PURGE_SECRET=SECRET)
    client = Client()

    client.get("/articles/a1/")  # rendered
    client.get("/articles/a2/")  # rendered
    client.get("/articles/a1/")  # a page-cache hit: named after the view that rendered it
    client.get("/articles/a1/", HTTP_X_STRATA_BENCH="cold", HTTP_X_STRATA_BENCH_SECRET=SECRET)

    figures = read_all()
    article = figures["views"][ARTICLE]
    assert article["rendered"]["count"] == 2
    assert article["page-hit"]["count"] == 1
    assert article["bench-cold"]["count"] == 1
    assert article["rendered"]["queries"] > 0 and article["rendered"]["db_ms"] > 0
    assert sum(article["rendered"]["histogram"]) == 2
    assert article["page-hit"]["queries"] == 0
    assert article["bench-cold"]["slowest"][0]["sql"].startswith("SELECT")
    assert [p["key"] for p in figures["processes"]] == [aggregates.process_key()]
    assert figures["buckets_ms"] == list(BUCKETS_MS)


def test_nothing_is_written_before_the_interval_has_passed(newsroom, strata_with, cache):
    strata_with(TIMING={"FLUSH_INTERVAL": 3600})
    client = Client()

    client.get("/articles/a1/")  # the first request of a process registers it
    client.get("/articles/a2/")

    written = cache.get(aggregates.process_key())["views"][ARTICLE]["rendered"]["count"]
    assert written == 1
    assert aggregates.local()["views"][ARTICLE]["rendered"]["count"] == 2


def test_a_page_hit_of_a_path_never_rendered_here_is_named_by_its_first_segment(
    newsroom, strata_with
):
    client = Client()
    client.get("/articles/a3/")
    aggregates.reset()  # as if another process had rendered it

    client.get("/articles/a3/")

    assert set(aggregates.local()["views"]) == {"/articles/"}


def test_the_figures_of_several_processes_add_up(newsroom, cache):
    def payload(key: str, count: int, db_ms: float, slow_ms: float) -> dict:
        histogram = [0] * (len(BUCKETS_MS) + 1)
        histogram[3] = count
        entry = {
            "count": count,
            "total_ms": 10.0 * count,
            "db_ms": db_ms,
            "cache_ms": 1.0,
            "template_ms": 2.0,
            "app_ms": 10.0 * count - db_ms - 3.0,
            "queries": 4 * count,
            "cache_calls": count,
            "histogram": histogram,
            "slowest": [{"ms": slow_ms, "sql": f"SELECT {key}"}],
        }
        return {"key": key, "server": "s", "pid": 1, "views": {"v": {"rendered": entry}}}

    one, two = PROCESS_PREFIX + "one", PROCESS_PREFIX + "two"
    cache.set(one, payload(one, 2, 5.0, 3.0))
    cache.set(two, payload(two, 3, 7.0, 9.0))
    cache.set(REGISTRY_KEY, {one: 0.0, two: 0.0, PROCESS_PREFIX + "gone": 0.0})

    merged = read_all()

    entry = merged["views"]["v"]["rendered"]
    assert entry["count"] == 5 and entry["db_ms"] == 12.0 and entry["queries"] == 20
    assert entry["histogram"][3] == 5
    assert [s["sql"] for s in entry["slowest"]] == [f"SELECT {two}", f"SELECT {one}"]
    assert len(merged["processes"]) == 2
    assert set(cache.get(REGISTRY_KEY)) == {one, two}  # the expired process is dropped


def test_a_summary_gives_shares_and_flags_the_30_percent_rule():
    histogram = [0] * (len(BUCKETS_MS) + 1)
    histogram[4] = 98  # <= 10 ms
    histogram[-1] = 2  # slower than the last bound
    entry = {
        "count": 100,
        "total_ms": 1000.0,
        "db_ms": 570.0,
        "cache_ms": 30.0,
        "template_ms": 100.0,
        "app_ms": 300.0,
        "queries": 300,
        "cache_calls": 200,
        "histogram": histogram,
    }

    summary = summarize(entry)

    assert summary["mean_ms"] == 10.0
    assert summary["p50_ms"] == 10.0 and summary["p99_ms"] is None
    assert summary["shares"]["db"] == pytest.approx(0.57)
    assert summary["over_30"] == ["db"]
    assert summary["queries_per_request"] == 3.0


def test_a_cache_that_fails_never_breaks_a_request(newsroom, strata_with, monkeypatch, caplog):
    strata_with(TIMING={"FLUSH_INTERVAL": 0})

    class Down:
        def __getattr__(self, name):
            raise ConnectionError("cache down")

    monkeypatch.setattr(aggregates, "caches", {strata_settings().cache_alias: Down()})

    assert Client().get("/articles/a1/").status_code == 200
    assert aggregates.flush(force=True) is False
    assert "could not write the timing figures" in caplog.text


def test_past_the_limit_new_views_share_one_entry(monkeypatch):
    from strata.timing import timed

    monkeypatch.setattr(aggregates, "MAX_ENTRIES", 2)
    with timed() as timing:
        pass

    for view in ("a", "b", "c", "d"):
        aggregates.record(view, "rendered", timing)

    views = aggregates.local()["views"]
    assert set(views) == {"a", "b", aggregates.OTHER_VIEW}
    assert views[aggregates.OTHER_VIEW]["rendered"]["count"] == 2


def test_an_unresolved_path_is_named_safely_for_a_header(rf):
    request = rf.get("/caf%C3%A9%0A/x/")

    assert aggregates.view_of(request) == "/caf%C3%A9%0A/"
    assert aggregates.view_of(rf.get("/robots.txt")) == "/robots.txt"
