"""A tier counts a response only when the response's own headers say that tier answered."""

from __future__ import annotations

import pytest

from strata.bench.tiers import BENCH_HEADER, SECRET_HEADER, TIERS, header_value, tiers_named

ACCELERATOR, PAGE, WARM, COLD = TIERS


def test_the_four_tiers_carry_the_seeds_targets_in_its_order():
    assert [t.name for t in TIERS] == ["accelerator", "page", "warm", "cold"]
    assert [t.target.label for t in TIERS] == ["10 ms", "35 ms", "100–300 ms", "500 ms–2 s"]


@pytest.mark.parametrize(
    "headers, answered",
    [
        ({"X-Cache": "HIT", "X-Strata": "edge-hit"}, True),
        ({"x-cache": " HIT "}, True),  # header names are case-insensitive, values trimmed
        ({"X-Cache": "MISS", "X-Strata": "page-hit"}, False),  # Django's page cache answered
        ({"X-Cache": "PASS"}, False),
        ({"X-Strata": "page-hit"}, False),  # no accelerator in front at all
    ],
)
def test_an_accelerator_hit_is_proven_by_x_cache_hit(headers, answered):
    assert ACCELERATOR.answered(headers) is answered


@pytest.mark.parametrize(
    "value, answered",
    [("page-hit", True), ("page-miss", False), ("page-stale", False), (None, False)],
)
def test_a_page_cache_hit_is_proven_by_x_strata_page_hit(value, answered):
    headers = [("X-Strata", value)] if value else [("Content-Type", "text/html")]
    assert PAGE.answered(headers) is answered


def test_warm_and_cold_are_proven_by_the_bench_bypass_not_by_a_page_cache_answer():
    assert WARM.answered({"X-Strata": "bypass: bench warm"})
    assert COLD.answered({"X-Strata": "bypass: bench cold"})
    assert not WARM.answered({"X-Strata": "bypass: bench cold"})
    assert not COLD.answered({"X-Strata": "page-hit"})
    assert not WARM.answered({"X-Strata": "page-miss"})


def test_what_answered_instead_is_named_in_the_proof_headers_words():
    assert PAGE.observed({"X-Strata": "page-miss"}) == "page-miss"
    assert ACCELERATOR.observed({"X-Cache": "MISS"}) == "MISS"
    assert WARM.observed({"Server": "x"}) == "(no X-Strata header)"


def test_only_the_bench_tiers_send_the_bench_headers_and_the_secret():
    assert ACCELERATOR.request_headers() == {}
    assert PAGE.request_headers(host="127.0.0.1", secret="s") == {"Host": "127.0.0.1"}
    assert COLD.request_headers(host="127.0.0.1", secret="s") == {
        "Host": "127.0.0.1",
        BENCH_HEADER: "cold",
        SECRET_HEADER: "s",
    }


def test_target_verdicts_compare_with_the_upper_bound_and_flag_five_times_slower():
    assert PAGE.target.verdict(20) == "on target"
    assert PAGE.target.verdict(70) == "2.0× the target"
    assert "room for improvement" in ACCELERATOR.target.verdict(60)


def test_tiers_are_chosen_by_name_in_table_order_and_unknown_names_are_refused():
    assert [t.name for t in tiers_named("cold,accelerator")] == ["accelerator", "cold"]
    with pytest.raises(ValueError, match="unknown tier bogus"):
        tiers_named("page,bogus")
    with pytest.raises(ValueError, match="no tier"):
        tiers_named(" , ")


def test_header_value_reads_mappings_and_lists_alike():
    assert header_value({"X-A": "1"}, "x-a") == "1"
    assert header_value([("x-a", "2")], "X-A") == "2"
    assert header_value([], "X-A") is None
