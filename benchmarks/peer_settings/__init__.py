"""Settings for ``benchmarks/querycache_peers.py``: the demo's settings, one query cache each.

Every module starts from ``newsroom_site.settings`` (same ``DATABASE_URL``, the Redis of
``CACHE_URL``) and turns on exactly one query cache, or none (``plain``); the page and
fragment caches are off in each, whatever the environment says.
"""
