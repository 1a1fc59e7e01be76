"""Summaries of measured samples, shared by ``strata check``, ``strata bench`` and the
benchmark scripts."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["interpolated_percentile", "percentile"]


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``, None when empty.

    Nearest rank returns a sample that was measured, never a value between two.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def interpolated_percentile(ordered: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100) of sorted ``ordered``, interpolated; None when empty.

    Between the two nearest samples (numpy's default method): what ``strata bench``'s own
    load loop has always reported. :func:`percentile` returns a measured sample instead.
    """
    if not ordered:
        return None
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
