"""What ``strata top`` shows: the figures of a running stack, tier by tier, between two
readings of its sources (app servers' ``/-/metrics`` and ``/-/timing/``, Varnish's
counters, HAProxy's ``show stat``, each program's health). No terminal code here: the
Rich view is ``strata.cli.top``; ``strata bench`` and ``strata check`` use the same
readings for the hit ratios of their reports (:mod:`strata.top.report`)."""

from .model import Answer, Figures, Health, Reading, Row, compare, take_reading
from .samples import Samples, parse, quantile
from .sources import SourceDown

__all__ = [
    "Answer",
    "Figures",
    "Health",
    "Reading",
    "Row",
    "Samples",
    "SourceDown",
    "compare",
    "parse",
    "quantile",
    "take_reading",
]
