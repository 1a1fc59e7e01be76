"""A clock that moves only when told to, and a template filter that moves it.

Timing tests with it are exact: ``{{ 5|tick }}`` spends five "seconds" where it renders.
"""

from __future__ import annotations

from django import template

register = template.Library()


class FakeClock:
    """Replaces ``perf_counter`` in :mod:`strata.timing.collector`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


clock = FakeClock()


@register.filter
def tick(seconds) -> str:
    """Spend ``seconds`` on the fake clock, render nothing."""
    clock.advance(float(seconds))
    return ""
