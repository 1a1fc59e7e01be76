"""Percentiles: a measured sample by nearest rank, or a value between two by interpolation."""

import pytest

from strata.bench.stats import interpolated_percentile, percentile


def test_nearest_rank_returns_a_sample_that_was_measured():
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([0.0, 10.0], 0.9) == 10.0
    assert percentile(list(range(1, 101)), 0.99) == 99


def test_interpolated_percentiles_lie_between_sorted_values():
    assert interpolated_percentile([], 50) is None
    assert interpolated_percentile([4.0], 99) == 4.0
    assert interpolated_percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert interpolated_percentile([0.0, 10.0], 90) == pytest.approx(9.0)
