"""Strata's query cache alone for ``benchmarks/peers.py``: page and fragment caches off.

The demo with ``StrataMiddleware`` and the ORM query cache only: the same work as a query
cache peer (django-cachalot, django-cacheops), which caches no template fragments.
"""

from newsroom_site.settings import *  # noqa: F403

STRATA = {
    **STRATA,  # noqa: F405
    "PAGE_CACHE": {"ENABLED": False},
    "FRAGMENT_CACHE": {"ENABLED": False},
}
