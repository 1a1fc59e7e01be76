"""What the page cache stores under a page key: a page, or a marker that says "render".

Both are pickled into the shared cache (Redis, Memcached) by Django's cache backends. A
page is a ``NamedTuple``: it pickles as a tuple (small, and quick to load on every hit)
and reads by field name. The marker is a type of its own, so that no check of a page's
fields can ever take it for a page. A change of either shape takes a new key prefix
(``strata.pages.keys.PAGE_PREFIX``), so that processes of two versions never read each
other's entries: an old entry is a miss, never misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Page", "PassMarker", "PASS_MARKER", "Entry"]


class Page(NamedTuple):
    """A stored response, valid while every version in ``snapshot`` is current."""

    snapshot: dict[str, str]
    """The versions of the tags the page was built from (plus ``*``)."""
    fresh_until: float
    """Wall-clock time after which the page is stale (served only while refreshed)."""
    status: int
    headers: list[tuple[str, str]]
    """The response's headers, without those that belong to one response."""
    content: bytes


@dataclass(frozen=True)
class PassMarker:
    """Stored for a page that turned out personal: the next requests render at once.

    Varnish's hit-for-miss: instead of queueing behind a lock for a page that will not be
    stored, each request renders its own answer, and the next shared answer replaces the
    marker. It is shared, so it carries no request's reason.
    """


PASS_MARKER = PassMarker()
"""The one marker there is (it has no fields)."""

Entry = Page | PassMarker
"""What a page key holds."""
