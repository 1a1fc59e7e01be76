"""The prefixes of Strata's keys in the shared cache, in one place.

Each layer keeps its artifacts under a prefix of its own (before the cache's own
``make_key``); the near cache (:mod:`strata.tags.nearcache`) asks Redis to push every
write under the prefixes of what it may copy. A prefix's number changes with the shape of
what it holds, so that processes of two versions never read each other's entries.
"""

from __future__ import annotations

__all__ = [
    "VERSION_PREFIX",
    "PAGE_PREFIX",
    "RESULT_PREFIX",
    "FRAGMENT_PREFIX",
    "NEAR_CACHE_PREFIXES",
]

VERSION_PREFIX = "strata:v:"
"""A tag's version."""

PAGE_PREFIX = "strata:p2:"
"""A stored page (:mod:`strata.pages.entries`); its number changes with the entries' shape."""

RESULT_PREFIX = "strata:q:"
"""A cached query result."""

FRAGMENT_PREFIX = "strata:f:"
"""A cached template fragment."""

NEAR_CACHE_PREFIXES = (VERSION_PREFIX, PAGE_PREFIX, RESULT_PREFIX, FRAGMENT_PREFIX)
"""What each process's near cache may copy (and Redis tells it of every write to)."""
