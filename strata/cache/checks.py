"""System checks of the cache Strata keeps tag versions and cached artifacts in.

Run when a layer that stores there is on (the query cache or the page cache): the alias
exists (``strata.E010``), is shared between processes (``E011``/``W011``), caches
something (``W012``), is not the database (``E039``), reads versions from one primary
(``W014``), and Sentinel (``E037``/``W038``) or a Memcached pool (``E034``–``W036``) is
set up as :mod:`strata.cache.sentinel` and :mod:`strata.tags.pool` need.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from ..conf import strata_settings

LOCAL_BACKENDS = ("django.core.cache.backends.locmem.LocMemCache",)
DUMMY_BACKENDS = ("django.core.cache.backends.dummy.DummyCache",)
DATABASE_BACKENDS = ("django.core.cache.backends.db.DatabaseCache",)
SENTINEL_BACKEND = "strata.cache.sentinel.SentinelRedisCache"
MEMCACHED_BACKENDS = (
    "django.core.cache.backends.memcached.PyMemcacheCache",
    "django.core.cache.backends.memcached.PyLibMCCache",
)


@register(Tags.caches)
def check_strata_cache(app_configs=None, **kwargs) -> list[CheckMessage]:
    """The cache named by ``STRATA['CACHE']``, when the query or page cache stores there."""
    conf = strata_settings()
    if not (conf.query_cache.enabled or conf.page_cache.enabled):
        return []
    return _check_cache(conf.cache_alias)


def _check_cache(alias: str) -> list[CheckMessage]:
    caches = getattr(settings, "CACHES", {})
    if alias not in caches:
        return [
            Error(
                f"STRATA['CACHE'] is {alias!r}, but CACHES has no such cache.",
                hint=f"Define CACHES[{alias!r}] (Redis or Memcached in production), or point "
                f"STRATA['CACHE'] at one of: {', '.join(caches) or 'none defined'}.",
                id="strata.E010",
            )
        ]
    config = caches[alias]
    backend = config.get("BACKEND", "")
    if backend in LOCAL_BACKENDS:
        message = (
            f"The query cache uses CACHES[{alias!r}], a LocMemCache: each process has its own "
            "copy, so a write in one app-server process leaves stale results in the others."
        )
        hint = (
            "Use Redis or Memcached (django.core.cache.backends.redis.RedisCache / "
            "memcached.PyMemcacheCache), or the file cache on one machine."
        )
        if settings.DEBUG:
            return [Warning(message + " Fine for runserver alone.", hint=hint, id="strata.W011")]
        return [Error(message, hint=hint, id="strata.E011")]
    if backend in DATABASE_BACKENDS:
        return [
            Error(
                f"STRATA['CACHE'] is {alias!r}, a DatabaseCache: every cached read would cost "
                "a query to read its versions (no cheaper than the query it saves), and "
                "version changes written through the application's own connection would "
                "take part in its transactions (in manual commit mode, others would see "
                "them only at its next commit).",
                hint="Give Strata a cache server (Redis or Memcached), or the file cache on "
                "one machine; a DatabaseCache can stay in CACHES for the project's own use.",
                id="strata.E039",
            )
        ]
    if backend in DUMMY_BACKENDS:
        return [
            Warning(
                f"The query cache uses CACHES[{alias!r}], a DummyCache: nothing is cached.",
                hint="Point STRATA['CACHE'] at a real cache, or turn the query cache off.",
                id="strata.W012",
            )
        ]
    if backend in MEMCACHED_BACKENDS:
        return _check_memcached_pool(alias, config)
    if backend == SENTINEL_BACKEND:
        return _check_sentinel(alias, config)
    location = config.get("LOCATION")
    if isinstance(location, str):
        location = [s for s in re.split("[;,]", location) if s.strip()]  # as Django splits
    if (
        backend.endswith("redis.RedisCache")
        and isinstance(location, list | tuple)
        and len(location) > 1
    ):
        return [
            Warning(
                f"CACHES[{alias!r}] lists several Redis servers; Django reads from any of the "
                "replicas, and a version read from a lagging replica could accept stale data.",
                hint="Give Strata a cache with a single primary for versions "
                "(STRATA['CACHE'] = an alias with one LOCATION), or, with Sentinel, "
                "strata.cache.sentinel.SentinelRedisCache (docs/sentinel.md).",
                id="strata.W014",
            )
        ]
    return []


def _check_sentinel(alias: str, config: dict) -> list[CheckMessage]:
    """Redis behind Sentinel: what ``strata.cache.sentinel`` needs, and one Sentinel is not enough."""
    from django.core.exceptions import ImproperlyConfigured

    problem: str | None
    try:
        from .sentinel import options_problem, parse_location

        sentinels = parse_location(config.get("LOCATION"))
    except ImportError as exc:
        sentinels, problem = [], f"the redis client is not installed ({exc})"
    except ImproperlyConfigured as exc:
        sentinels, problem = [], str(exc).removeprefix("SentinelRedisCache: ").rstrip(".")
    else:
        problem = options_problem(config.get("OPTIONS") or {})
    if problem is not None:
        return [
            Error(
                f"CACHES[{alias!r}] is a SentinelRedisCache, but {problem}.",
                hint="LOCATION = ['sentinel://10.0.0.5:26379', ...] (every Sentinel), "
                "OPTIONS = {'service_name': <the name in 'sentinel monitor'>}; "
                "pip install 'redis[hiredis]' (docs/sentinel.md).",
                id="strata.E037",
            )
        ]
    if len(set(sentinels)) == 1:
        return [
            Warning(
                f"CACHES[{alias!r}] names a single Sentinel: while it is down no failover "
                "happens and the primary cannot be found, and it alone decides that the "
                "primary has failed.",
                hint="Run three Sentinels on different hosts (quorum 2) and list them all in "
                "LOCATION.",
                id="strata.W038",
            )
        ]
    return []


def _check_memcached_pool(alias: str, config: dict) -> list[CheckMessage]:
    """A pool of Memcached servers: what ``strata.tags.pool`` needs to keep versions safe."""
    location = config.get("LOCATION") or ""
    servers = re.split("[;,]", location) if isinstance(location, str) else list(location)
    distinct = {str(server).strip() for server in servers if str(server).strip()}
    if len(distinct) < 2:
        return []
    messages: list[CheckMessage] = []
    try:
        import pymemcache  # noqa: F401
    except ImportError:
        messages.append(
            Error(
                f"CACHES[{alias!r}] is a pool of Memcached servers, and Strata keeps tag "
                "versions on a majority of a tag's nodes through pymemcache, which is not "
                "installed.",
                hint="pip install pymemcache (django-strata's memcached extra).",
                id="strata.E034",
            )
        )
    if len(distinct) == 2:
        messages.append(
            Warning(
                f"CACHES[{alias!r}] is a pool of two Memcached servers: each tag's version "
                "needs both copies (one copy alone could be an old one), so while either "
                "server is out, every cached query and page is a miss.",
                hint="Add a third server: versions then live on three nodes, any two of "
                "which are enough (docs/cache-pool.md).",
                id="strata.W035",
            )
        )
    options = config.get("OPTIONS") or {}
    if config.get("BACKEND", "").endswith("PyMemcacheCache") and not (
        options.get("timeout") and options.get("connect_timeout")
    ):
        messages.append(
            Warning(
                f"CACHES[{alias!r}] is a pool of Memcached servers without OPTIONS "
                "'timeout' and 'connect_timeout': a node cut off by the network makes every "
                "request that reaches it wait for the operating system's TCP timeouts.",
                hint="Set OPTIONS = {'timeout': 0.5, 'connect_timeout': 0.5} (seconds); "
                "Strata's own version reads use these, or 1 s when unset.",
                id="strata.W036",
            )
        )
    return messages
