"""Counters and histograms from the Prometheus text format, and what two readings of
them say about the interval between them.

:func:`parse` turns an answer of ``/-/metrics`` into :class:`Samples` (every sample by
name and labels, through ``prometheus_client.parser``); :func:`delta` subtracts two
counter totals (None when the counter went backwards: the process restarted, the
interval means nothing); :func:`quantile` estimates a quantile from the cumulative
buckets of a histogram the way Prometheus's ``histogram_quantile`` does (linear inside
the bucket), so its answer is bounded by the buckets, never finer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "parse", "delta", "quantile", "bucket_delta", "ratio"]

Labels = frozenset[tuple[str, str]]


class Samples:
    """Every sample of one ``/-/metrics`` answer: ``(name, labels) → value``."""

    def __init__(self, values: Mapping[tuple[str, Labels], float] | None = None):
        self.values: dict[tuple[str, Labels], float] = dict(values or {})

    def __len__(self) -> int:
        return len(self.values)

    def names(self) -> set[str]:
        """The sample names present (``strata_requests_total``, ``..._bucket``...)."""
        return {name for name, _ in self.values}

    def select(
        self,
        name: str,
        exclude: Mapping[str, Sequence[str]] | None = None,
        **labels: str | Sequence[str],
    ) -> list[tuple[dict, float]]:
        """``(labels, value)`` of each sample called ``name`` whose labels match: a label
        given as a string must equal it, one given as a sequence must be one of them;
        and none of its labels is one of the values ``exclude`` gives for that label."""
        found = []
        for (sample, sample_labels), value in self.values.items():
            if sample != name:
                continue
            have = dict(sample_labels)
            if not all(_matches(have.get(k), want) for k, want in labels.items()):
                continue
            if exclude and any(have.get(k) in values for k, values in exclude.items()):
                continue
            found.append((have, value))
        return found

    def total(
        self,
        name: str,
        exclude: Mapping[str, Sequence[str]] | None = None,
        **labels: str | Sequence[str],
    ) -> float | None:
        """The sum of the matching samples; None when there is none at all."""
        found = self.select(name, exclude, **labels)
        return sum(value for _, value in found) if found else None

    def maximum(self, name: str, **labels: str | Sequence[str]) -> float | None:
        """The largest matching sample (a gauge per accelerator); None when there is none."""
        found = self.select(name, None, **labels)
        return max(value for _, value in found) if found else None

    def buckets(
        self,
        name: str,
        exclude: Mapping[str, Sequence[str]] | None = None,
        **labels: str | Sequence[str],
    ) -> list[tuple[float, float]]:
        """The cumulative buckets ``(le, count)`` of histogram ``name`` (without the
        ``_bucket`` suffix), summed over the matching label sets, by ``le``."""
        summed: dict[float, float] = {}
        for have, value in self.select(f"{name}_bucket", exclude, **labels):
            try:
                bound = float(have.get("le", "nan"))
            except ValueError:
                continue
            if not math.isnan(bound):
                summed[bound] = summed.get(bound, 0.0) + value
        return sorted(summed.items())


def _matches(have: str | None, want: str | Sequence[str]) -> bool:
    if isinstance(want, str):
        return have == want
    return have in want


def parse(text: str) -> Samples:
    """The samples of a Prometheus text answer; ``ValueError`` when it is not one."""
    values: dict[tuple[str, Labels], float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                values[key] = values.get(key, 0.0) + float(sample.value)
    except Exception as error:  # the parser raises ValueError, IndexError, ... on bad text
        raise ValueError(f"not the Prometheus text format: {error}") from None
    return Samples(values)


def delta(before: float | None, after: float | None) -> float | None:
    """``after - before`` of a counter; None when either is unknown or it went backwards
    (the counter was reset: the process behind it restarted)."""
    if before is None or after is None or after < before:
        return None
    return after - before


def bucket_delta(
    before: Iterable[tuple[float, float]], after: Iterable[tuple[float, float]]
) -> list[tuple[float, float]] | None:
    """The cumulative buckets of what was observed between two readings; None when a
    bucket went backwards (a restart) or the bounds differ."""
    old = dict(before)
    new = dict(after)
    if old and set(old) != set(new):
        return None
    out = []
    for bound, count in sorted(new.items()):
        change = delta(old.get(bound, 0.0), count)
        if change is None:
            return None
        out.append((bound, change))
    return out


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile (0..1) of a histogram's cumulative buckets ``(le, count)``,
    ``+Inf`` last; None when it holds no observation. An answer in the ``+Inf`` bucket
    is the largest finite bound (all that is known: "at least this")."""
    if not buckets or not 0 <= q <= 1:
        return None
    buckets = sorted(buckets)
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def ratio(part: float | None, whole: float | None) -> float | None:
    """``part / whole``; None when either is unknown or nothing happened (``whole`` 0)."""
    if part is None or not whole:
        return None
    return part / whole
