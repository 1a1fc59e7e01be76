"""Where a request's time goes, from its Server-Timing, and the seed's 30% rule."""

from __future__ import annotations

import json

import pytest

from strata.bench.breakdown import breakdown, parse_server_timing


def response(db, cache, tpl, app, total=None, slow=(), queries=4, view="newsroom.views.home"):
    timing = f'db;dur={db};desc="{queries} queries, joined", cache;dur={cache};desc="3 calls", '
    timing += f"tpl;dur={tpl}" + (f", app;dur={app}" if app is not None else "")
    timing += f", total;dur={total if total is not None else db + cache + tpl + (app or 0)}"
    return {
        "Server-Timing": timing,
        "X-Strata-Queries": str(queries),
        "X-Strata-Slow-Queries": json.dumps([{"ms": ms, "sql": sql} for ms, sql in slow]),
        "X-Strata-Timing-View": view,
        "X-Strata": "bypass: bench cold",
    }


def test_server_timing_is_parsed_with_quoted_descriptions_that_hold_commas_and_semicolons():
    metrics = parse_server_timing(
        'db;dur=12.3;desc="4 queries, 1; join", CACHE;dur=0.8, tpl;dur=5, app, db;dur=99, ;x'
    )
    assert metrics["db"] == {"dur": "12.3", "desc": "4 queries, 1; join"}  # first one wins
    assert metrics["cache"] == {"dur": "0.8"}  # names are case-insensitive
    assert metrics["app"] == {}
    assert list(metrics) == ["db", "cache", "tpl", "app"]


def test_shares_are_of_the_total_summed_over_the_sampled_requests():
    result = breakdown([response(10, 5, 25, 60), response(30, 5, 15, 50)])
    assert result.requests == 2
    assert result.total_ms == pytest.approx(100)
    assert result.components_ms == pytest.approx({"db": 20, "cache": 5, "tpl": 20, "app": 55})
    assert result.shares == pytest.approx({"db": 0.2, "cache": 0.05, "tpl": 0.2, "app": 0.55})
    assert result.queries == 4
    assert result.views == ["newsroom.views.home"]


def test_the_app_is_what_the_components_leave_of_the_total_when_not_given():
    result = breakdown([response(20, 10, 30, None, total=100)])
    assert result.components_ms["app"] == pytest.approx(40)


def test_a_component_over_30_percent_fails_the_rule_and_is_named():
    result = breakdown([response(57, 3, 10, 30)])
    assert not result.passes
    assert [name for name, _ in result.over_rule] == ["db"]
    assert result.verdict.startswith("fails the 30% rule: database 57%")


def test_templates_count_as_a_component_and_the_apps_own_python_does_not():
    assert breakdown([response(5, 5, 60, 30)]).over_rule[0][0] == "tpl"
    passing = breakdown([response(20, 5, 25, 50)])
    assert passing.passes  # the app's 50% is where the seed wants the time
    assert passing.verdict.startswith("passes the 30% rule: no component over 30% (largest: ")


def test_the_slowest_queries_are_merged_across_requests_and_ranked_by_their_worst_time():
    count = 'SELECT COUNT(*) FROM "newsroom_comment"'
    result = breakdown(
        [
            response(50, 1, 1, 1, slow=[(40.0, count), (2.0, "SELECT 1")]),
            response(50, 1, 1, 1, slow=[(30.0, count), (9.0, "SELECT 2"), (1.0, "SELECT 3")]),
        ],
        slowest=3,
    )
    assert [q.sql for q in result.slowest] == [count, "SELECT 2", "SELECT 1"]
    assert (result.slowest[0].max_ms, result.slowest[0].mean_ms, result.slowest[0].seen) == (
        40.0,
        35.0,
        2,
    )


def test_responses_without_timings_are_left_out_and_none_at_all_gives_no_breakdown():
    assert breakdown([{"X-Strata": "page-hit"}]) is None
    bad = {"Server-Timing": "db;dur=abc", "X-Strata-Slow-Queries": "not json"}
    assert breakdown([bad, response(10, 10, 10, 70)]).requests == 1
