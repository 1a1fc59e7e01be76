"""Load that a tier did not answer is reported and kept out of that tier's figures.

The stand-in stack answers every second request from the wrong tier (a page-cache miss
instead of a hit), as a cache that expires under load would.
"""

from __future__ import annotations

import pytest

from strata.bench import load as load_module
from strata.bench.load import (
    LoadSpec,
    PythonLoad,
    Tally,
    WrkLoad,
    choose_engine,
    merge,
)
from strata.bench.wrk import wrk_available
from tests.bench.fakestack import FakeStack


def page_hit_spec(port: int) -> LoadSpec:
    return LoadSpec("127.0.0.1", port, "/", {"Host": "127.0.0.1"}, "X-Strata", "page-hit")


def assert_half_were_mismatches(result):
    mismatched = result.mismatches.get("page-miss", 0)
    assert set(result.mismatches) == {"page-miss"}
    assert result.answered > 0 and mismatched > 0
    assert result.answered + mismatched == result.requests
    # The server alternates; only requests in flight when the run stopped can tip it.
    assert abs(result.answered - mismatched) <= result.connections + 1
    assert result.errors == 0


def test_python_fallback_counts_wrong_tier_answers_apart_and_times_only_the_tiers_own():
    with FakeStack(wrong_every=2) as fake:
        result = PythonLoad().run(page_hit_spec(fake.port), seconds=0.5, connections=4)
    assert_half_were_mismatches(result)
    assert result.latency_of == "answered requests"
    assert result.valid  # mismatches are excluded, so the figures still describe the tier
    assert result.rps == pytest.approx(result.answered / result.seconds)
    lines = result.mismatch_lines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{result.mismatched:,} of {result.requests:,} requests were ")
    assert lines[0].endswith("answered by page-miss, not page-hit (X-Strata)")


@pytest.mark.skipif(not wrk_available(), reason="wrk is not installed")
def test_wrk_counts_wrong_tier_answers_apart_and_says_its_figures_are_not_valid():
    with FakeStack(wrong_every=2) as fake:
        result = WrkLoad(threads=2).run(page_hit_spec(fake.port), seconds=1, connections=4)
    assert_half_were_mismatches(result)
    assert result.engine.startswith("wrk")
    # wrk's histogram holds every response: with half from another tier it is not the tier's.
    assert result.latency_of == "all responses"
    assert not result.valid
    assert result.rps == pytest.approx(result.answered / result.seconds)


@pytest.mark.skipif(not wrk_available(), reason="wrk is not installed")
def test_wrk_names_a_missing_proof_header_and_counts_status_errors_apart(fake):
    absent = WrkLoad().run(LoadSpec("127.0.0.1", fake.port, "/", {}, "X-Nope", "HIT"), 1, 2)
    assert set(absent.mismatches) == {None} and absent.answered == 0
    assert "answered by (no X-Nope header), not HIT (X-Nope)" in absent.mismatch_lines()[0]
    missing = WrkLoad().run(
        LoadSpec("127.0.0.1", fake.port, "/missing/", {}, "X-Cache", "HIT"), 1, 2
    )
    assert missing.errors == missing.requests > 0
    assert missing.answered == 0 and missing.mismatches == {}


def test_a_tally_keeps_other_tiers_and_errors_out_of_the_latencies():
    tally = Tally("X-Cache", "HIT")
    tally.record(200, {"X-Cache": "HIT"}, 1.0)
    tally.record(200, {"X-Cache": "HIT"}, 3.0)
    tally.record(200, {"X-Cache": "MISS"}, 900.0)
    tally.record(200, {}, 800.0)
    tally.record(503, {"X-Cache": "HIT"}, 700.0)
    result = merge([tally], "Python fallback (test)", seconds=1.0, connections=1)
    assert (result.requests, result.answered, result.errors) == (5, 2, 1)
    assert result.mismatches == {"MISS": 1, None: 1}
    assert result.max_ms == 3.0 and result.p50_ms == 2.0


def test_the_python_fallback_says_it_is_one(monkeypatch):
    monkeypatch.setattr(load_module, "wrk_available", lambda: False)
    engine = choose_engine()
    assert engine.is_fallback
    assert engine.label == "Python fallback (wrk not installed)"
    assert choose_engine(python_load=True).label == "Python fallback (--python-load)"


def test_ctrl_c_stops_the_python_fallback_with_what_it_measured():
    calls = []

    def tick(elapsed, responses):
        calls.append(responses)
        raise KeyboardInterrupt

    with FakeStack() as fake:
        result = PythonLoad().run(page_hit_spec(fake.port), seconds=30, connections=2, tick=tick)
    assert result.interrupted
    assert calls and result.requests >= calls[0]
    assert result.seconds < 30


@pytest.mark.skipif(not wrk_available(), reason="wrk is not installed")
def test_ctrl_c_stops_wrk_which_still_reports_what_it_measured():
    def tick(elapsed, responses):
        raise KeyboardInterrupt

    with FakeStack() as fake:
        result = WrkLoad().run(page_hit_spec(fake.port), seconds=30, connections=2, tick=tick)
    assert result.interrupted
    assert result.seconds < 30
    assert result.answered == result.requests
