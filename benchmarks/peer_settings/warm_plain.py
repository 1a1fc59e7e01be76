"""The demo with no Strata layer at all, for ``benchmarks/peers.py``: plain Django.

No ``StrataMiddleware``; Strata's query, page and fragment caches off and no accelerator
to purge, so its ORM hooks are not installed (``strata`` stays an installed app for the
templates' ``{% load strata %}``: an anonymous ``{% personal %}`` renders in place and
``{% cached %}`` renders its content). Every query goes to PostgreSQL. Without Strata's
middleware there is no ``/-/health``: the app server is probed on ``/``. The base of
``warm_cachalot`` and ``warm_cacheops``.
"""

from newsroom_site.settings import *  # noqa: F403

MIDDLEWARE = [m for m in MIDDLEWARE if m != "strata.middleware.StrataMiddleware"]  # noqa: F405
STRATA = {
    **STRATA,  # noqa: F405
    "QUERY_CACHE": {"ENABLED": False},
    "PAGE_CACHE": {"ENABLED": False},
    "FRAGMENT_CACHE": {"ENABLED": False},
    "ACCELERATORS": [],
}
