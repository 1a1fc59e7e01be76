"""django-cachalot as a project without Strata would run it, for ``benchmarks/peers.py``.

``warm_plain`` (no Strata layer) with cachalot's defaults, its results in the Django cache
of ``CACHE_URL`` (the stack's Redis).
"""

from peer_settings.warm_plain import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "cachalot"]  # noqa: F405
CACHALOT_ENABLED = True
CACHALOT_CACHE = "default"
