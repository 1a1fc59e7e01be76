"""The words of the ``X-Strata`` response header: which cache answered, or why none did.

The app says ``page-hit``, ``page-stale``, ``page-miss`` or ``bypass: <reason>``; the
accelerator's VCL (``strata/stack/templates/varnish.vcl.j2``) replaces the word with
``edge-hit`` or ``edge-stale`` when it answers from its own copy. Benchmarks and checks
read the same words back to prove which tier answered.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Outcome", "bypass", "is_bypass"]


class Outcome(StrEnum):
    """An ``X-Strata`` word; equal to (and sent as) its plain string."""

    PAGE_HIT = "page-hit"
    """Served from the page cache, fresh and valid."""
    PAGE_STALE = "page-stale"
    """Served from the page cache, valid but past its lifetime (being refreshed, or the
    render failed: RFC 5861 stale-while-revalidate and stale-if-error)."""
    PAGE_MISS = "page-miss"
    """Rendered by the view, and stored in the page cache."""
    BYPASS = "bypass"
    """Rendered, and stored nowhere: the header says ``bypass: <reason>`` (:func:`bypass`)."""
    EDGE_HIT = "edge-hit"
    """Served by the accelerator from its copy (set in the VCL)."""
    EDGE_STALE = "edge-stale"
    """Served by the accelerator from an expired copy, in grace (set in the VCL)."""


_BYPASS_PREFIX = f"{Outcome.BYPASS}: "


def bypass(reason: str) -> str:
    """The ``X-Strata`` value of an answer stored nowhere: ``bypass: <reason>``."""
    return _BYPASS_PREFIX + reason


def is_bypass(word: str | None) -> bool:
    """True when ``word`` (an ``X-Strata`` value, or None) says no cache was used."""
    return word is not None and word.startswith(_BYPASS_PREFIX)
