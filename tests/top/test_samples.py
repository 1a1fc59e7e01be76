"""Prometheus text into samples, counters into changes, buckets into quantiles."""

from __future__ import annotations

import math

import pytest

from strata.top.samples import bucket_delta, delta, parse, quantile, ratio

TEXT = """\
# HELP strata_requests_total requests
# TYPE strata_requests_total counter
strata_requests_total{view="home",outcome="page-hit",reason=""} 30.0
strata_requests_total{view="home",outcome="page-miss",reason=""} 10.0
strata_requests_total{view="article",outcome="bypass",reason="session"} 5.0
# HELP d duration
# TYPE d histogram
d_bucket{le="0.01"} 4.0
d_bucket{le="0.1"} 9.0
d_bucket{le="+Inf"} 10.0
d_count 10.0
d_sum 1.2
"""


def test_counters_are_summed_over_the_labels_asked_for():
    samples = parse(TEXT)
    assert samples.total("strata_requests_total") == 45
    assert samples.total("strata_requests_total", outcome="page-hit") == 30
    assert samples.total("strata_requests_total", outcome=("page-hit", "page-miss")) == 40
    assert samples.total("strata_requests_total", view="nowhere") is None


def test_a_histograms_buckets_come_back_cumulative_by_bound():
    assert parse(TEXT).buckets("d") == [(0.01, 4.0), (0.1, 9.0), (math.inf, 10.0)]


def test_text_that_is_not_the_prometheus_format_is_refused_in_one_line():
    with pytest.raises(ValueError, match="not the Prometheus text format"):
        parse("<html>not found</html>\n{")


def test_a_counter_that_went_backwards_means_a_restart_not_a_negative_rate():
    assert delta(10, 25) == 15
    assert delta(25, 10) is None
    assert delta(None, 10) is None


def test_the_quantile_interpolates_inside_its_bucket_like_prometheus():
    buckets = [(0.01, 4.0), (0.1, 9.0), (math.inf, 10.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01 + 0.09 * (1 / 5))
    assert quantile(0.2, buckets) == pytest.approx(0.005)


def test_a_quantile_in_the_overflow_bucket_is_the_largest_known_bound():
    assert quantile(0.99, [(0.01, 4.0), (0.1, 9.0), (math.inf, 10.0)]) == 0.1


def test_no_observation_no_quantile():
    assert quantile(0.5, [(0.01, 0.0), (math.inf, 0.0)]) is None
    assert quantile(0.5, []) is None


def test_the_buckets_between_two_readings_are_what_was_observed_in_between():
    before = [(0.01, 4.0), (math.inf, 10.0)]
    after = [(0.01, 6.0), (math.inf, 20.0)]
    assert bucket_delta(before, after) == [(0.01, 2.0), (math.inf, 10.0)]
    assert bucket_delta(after, before) is None  # reset: a restart


def test_a_ratio_of_nothing_is_unknown_not_zero():
    assert ratio(3, 4) == 0.75
    assert ratio(0, 0) is None
