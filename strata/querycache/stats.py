"""Per-process counters of what the query cache did (for tests, status and bench)."""

from __future__ import annotations

from collections import Counter

__all__ = ["stats", "reset_stats"]

stats: Counter[str] = Counter()
"""``hit``, ``miss``, ``store``, ``bypass:<reason>``, ``error``, ``invalidate``."""


def reset_stats() -> None:
    """Zero every counter."""
    stats.clear()
