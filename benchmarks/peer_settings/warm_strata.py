"""Strata's warm path for ``benchmarks/peers.py``: the demo with its page cache off.

Everything else is the demo's: ``StrataMiddleware``, the ORM query cache and the
``{% cached %}`` fragments, in the Redis of ``CACHE_URL``. A request renders the view;
its queries and fragments come from the cache once they are warm.
"""

from newsroom_site.settings import *  # noqa: F403

STRATA = {**STRATA, "PAGE_CACHE": {"ENABLED": False}}  # noqa: F405
