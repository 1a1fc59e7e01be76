"""System checks for the ``STRATA`` setting (IDs ``strata.E0xx`` / ``strata.W0xx``).

=============  =====================================================================
``E001``       ``STRATA`` is not a dict
``E002``       unknown key in ``STRATA``
``E003``       ``EDGE_TTL`` is not a whole number of seconds
``E004``       ``HEALTH_PATH`` does not start with ``/``
``E010``       ``STRATA['CACHE']`` names a cache that ``CACHES`` does not define
``E011``       the query cache uses a per-process cache (LocMemCache) with DEBUG off
``W011``       ... the same with DEBUG on (fine for ``runserver``, wrong under an app server)
``W012``       the query cache uses DummyCache: it caches nothing
``E013``       ``QUERY_CACHE`` is not a dict, has unknown keys, or values of the wrong type
``W014``       the cache is Redis with several servers: versions could be read from a
               lagging replica
``E015``       ``WRITE_ROW_LIMIT`` is not a positive whole number
``E016``       ``PAGE_CACHE`` is not a dict, has unknown keys, or values of the wrong type
``E017``       ``FRAGMENT_CACHE`` is not a dict, has unknown keys, or a bad ``TIMEOUT``
``E018``       ``ACCELERATORS`` is not a list of ``http://host:port`` URLs
``W019``       accelerators are configured without a ``PURGE_SECRET``
``E020``       ``PURGE_DELAY``/``PURGE_WAIT``/``TAGS_HEADER_LIMIT`` out of range
``E021``       the page cache is on but ``StrataMiddleware`` is not first in ``MIDDLEWARE``
``W022``       personal holes are not routed (``strata.urls`` is not included)
``W023``       Django's per-site cache middleware runs beside Strata's page cache
``E024``       ``TIMING`` is not a dict, has unknown keys, or values of the wrong type
``W025``       ``TIMING['SERVER_TIMING']`` is ``"all"`` while accelerators are configured:
               they would store one render's timings and show them with every hit
``W026``       ``SESSION_ENGINE`` is Django's ``cached_db``: logged-in requests fail while
               the cache server is down (``strata.sessions`` falls back to the database)
``E027``       ``REPLICAS`` is not a list of ``DATABASES`` aliases other than ``default``
``E028``       ``REPLICAS`` is set but ``strata.replicas.ReplicaRouter`` is not in
               ``DATABASE_ROUTERS``
``W029``       a replica or the primary is not PostgreSQL: nothing read from that replica
               can be cached (its replay position is unknown)
``E030``       ``READ_YOUR_WRITES`` is not a number of seconds >= 0
``W031``       ``REPLICAS`` is set but ``strata.replicas.ReadYourWritesMiddleware`` is not
               in ``MIDDLEWARE``: a client may not read its own write on its next request
``W032``       a database behind a pooler in transaction mode (listed in
               ``TRANSACTION_POOLED``, or on port 6432, pgbouncer's) keeps server-side
               cursors on, prepares statements, or sets a role per connection
``E033``       ``TRANSACTION_POOLED`` is not a list of PostgreSQL ``DATABASES`` aliases
``E034``       the cache is a pool of Memcached servers but pymemcache is not installed:
               Strata keeps each tag's version on a majority of its nodes with it
``W035``       the cache is a pool of two Memcached servers: a version needs both copies,
               so while either is out every version read is a miss
``W036``       the cache is a pymemcache pool without ``timeout``/``connect_timeout``:
               a partitioned node hangs the requests that reach it
``E037``       the cache is ``strata.cache.SentinelRedisCache`` without
               ``OPTIONS['service_name']``, with a ``pool_class`` or a bad
               ``primary_check_interval``, or with a ``LOCATION`` that is not a list of
               ``sentinel://host:port``
``W038``       the cache is ``SentinelRedisCache`` with a single Sentinel: no failover
               while it is down, and it alone decides that the primary failed
``E039``       ``STRATA['CACHE']`` is a DatabaseCache: versions would cost a query per read
               and take part in the application's transactions
``W040``       the stack exports a variable (``DATABASE_URL``, ``CACHE_URL``,
               ``STRATA_ACCELERATORS``, ...) that the settings ignore: call
               ``strata.env.configure(globals())`` last in the settings module
=============  =====================================================================
"""

from __future__ import annotations

import os
import re

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import env
from .conf import (
    DEFAULTS,
    FRAGMENT_CACHE_DEFAULTS,
    PAGE_CACHE_DEFAULTS,
    QUERY_CACHE_DEFAULTS,
    SERVER_TIMING_CHOICES,
    TIMING_DEFAULTS,
    strata_settings,
)

LOCAL_BACKENDS = ("django.core.cache.backends.locmem.LocMemCache",)
DUMMY_BACKENDS = ("django.core.cache.backends.dummy.DummyCache",)
DATABASE_BACKENDS = ("django.core.cache.backends.db.DatabaseCache",)


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value, minimum: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= minimum


@register(Tags.compatibility)
def check_strata_setting(app_configs=None, **kwargs):
    """Validate the keys and value types of ``settings.STRATA``."""
    raw = getattr(settings, "STRATA", {})
    if not isinstance(raw, dict):
        return [
            Error(
                "The STRATA setting must be a dict.",
                hint="Write STRATA = {'EDGE_TTL': 10, ...} in your settings.",
                id="strata.E001",
            )
        ]
    errors = []
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        errors.append(
            Error(
                f"Unknown key(s) in STRATA: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="strata.E002",
            )
        )
    ttl = raw.get("EDGE_TTL", DEFAULTS["EDGE_TTL"])
    if not _is_int(ttl, 0):
        errors.append(
            Error(
                f"STRATA['EDGE_TTL'] must be a whole number of seconds >= 0, not {ttl!r}.",
                hint="For example STRATA = {'EDGE_TTL': 10}.",
                id="strata.E003",
            )
        )
    path = raw.get("HEALTH_PATH", DEFAULTS["HEALTH_PATH"])
    if not isinstance(path, str) or not path.startswith("/"):
        errors.append(
            Error(
                f"STRATA['HEALTH_PATH'] must be a path starting with '/', not {path!r}.",
                hint="For example STRATA = {'HEALTH_PATH': '/-/health'}.",
                id="strata.E004",
            )
        )
    limit = raw.get("WRITE_ROW_LIMIT", DEFAULTS["WRITE_ROW_LIMIT"])
    if not _is_int(limit, 1):
        errors.append(
            Error(
                f"STRATA['WRITE_ROW_LIMIT'] must be a whole number >= 1, not {limit!r}.",
                hint="It bounds how many rows a write inspects before invalidating the whole "
                "table; the default is 1000.",
                id="strata.E015",
            )
        )
    errors += _check_query_cache(raw)
    errors += _check_page_cache(raw)
    errors += _check_fragment_cache(raw)
    errors += _check_purges(raw)
    errors += _check_timing(raw)
    errors += _check_replicas(raw)
    errors += _check_transaction_pooled(raw)
    return errors


def _block_errors(raw: dict, name: str, defaults: dict, check_id: str) -> tuple[dict, list]:
    block = raw.get(name)
    if block is None:
        return {}, []
    if not isinstance(block, dict):
        return {}, [
            Error(
                f"STRATA['{name}'] must be a dict.",
                hint=f"For example STRATA = {{'{name}': {{'ENABLED': True}}}}.",
                id=check_id,
            )
        ]
    unknown = sorted(set(block) - set(defaults))
    if unknown:
        return block, [
            Error(
                f"Unknown key(s) in STRATA['{name}']: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(defaults))}.",
                id=check_id,
            )
        ]
    return block, []


def _check_page_cache(raw: dict) -> list:
    block, errors = _block_errors(raw, "PAGE_CACHE", PAGE_CACHE_DEFAULTS, "strata.E016")
    if not block:
        return errors
    for key, minimum in (("TIMEOUT", 1), ("STALE_WHILE_REVALIDATE", 0), ("MAX_QUERY_STRING", 0)):
        value = block.get(key, PAGE_CACHE_DEFAULTS[key])
        if not _is_int(value, minimum):
            errors.append(
                Error(
                    f"STRATA['PAGE_CACHE']['{key}'] must be a whole number >= {minimum}, "
                    f"not {value!r}.",
                    hint=f"The default is {PAGE_CACHE_DEFAULTS[key]}.",
                    id="strata.E016",
                )
            )
    for key, minimum in (("LOCK_TIMEOUT", 1), ("LOCK_WAIT", 0)):
        value = block.get(key, PAGE_CACHE_DEFAULTS[key])
        if not _is_number(value, minimum):
            errors.append(
                Error(
                    f"STRATA['PAGE_CACHE']['{key}'] must be a number of seconds >= {minimum}, "
                    f"not {value!r}.",
                    hint=f"The default is {PAGE_CACHE_DEFAULTS[key]}.",
                    id="strata.E016",
                )
            )
    statuses = block.get("STATUS_TIMEOUTS", {})
    if not isinstance(statuses, dict) or not all(
        _is_int(k, 100) and _is_int(v, 1) for k, v in statuses.items()
    ):
        errors.append(
            Error(
                f"STRATA['PAGE_CACHE']['STATUS_TIMEOUTS'] must map status codes to seconds, "
                f"not {statuses!r}.",
                hint="For example {301: 60, 404: 30}.",
                id="strata.E016",
            )
        )
    for key in ("IGNORED_PARAMETERS", "EXCLUDE_PATHS"):
        value = block.get(key, [])
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            errors.append(
                Error(
                    f"STRATA['PAGE_CACHE']['{key}'] must be a list of strings, not {value!r}.",
                    hint=f"The default is {PAGE_CACHE_DEFAULTS[key]!r}.",
                    id="strata.E016",
                )
            )
    if block.get("ENABLED", True):
        errors += _check_middleware_first()
        errors += _check_cache(raw.get("CACHE", DEFAULTS["CACHE"]))
    return errors


def _check_fragment_cache(raw: dict) -> list:
    block, errors = _block_errors(raw, "FRAGMENT_CACHE", FRAGMENT_CACHE_DEFAULTS, "strata.E017")
    timeout = block.get("TIMEOUT", FRAGMENT_CACHE_DEFAULTS["TIMEOUT"])
    if block and not _is_int(timeout, 1):
        errors.append(
            Error(
                f"STRATA['FRAGMENT_CACHE']['TIMEOUT'] must be a whole number >= 1, "
                f"not {timeout!r}.",
                hint="The default is 600.",
                id="strata.E017",
            )
        )
    return errors


def _check_timing(raw: dict) -> list:
    block, errors = _block_errors(raw, "TIMING", TIMING_DEFAULTS, "strata.E024")
    if not block:
        return errors
    enabled = block.get("ENABLED", True)
    if not isinstance(enabled, bool):
        errors.append(
            Error(
                f"STRATA['TIMING']['ENABLED'] must be True or False, not {enabled!r}.",
                hint="Timing is on by default; False removes its hooks and headers.",
                id="strata.E024",
            )
        )
    mode = block.get("SERVER_TIMING", TIMING_DEFAULTS["SERVER_TIMING"])
    if mode not in SERVER_TIMING_CHOICES:
        errors.append(
            Error(
                f"STRATA['TIMING']['SERVER_TIMING'] must be one of "
                f"{', '.join(map(repr, SERVER_TIMING_CHOICES))}, not {mode!r}.",
                hint="'personal' (the default) sends Server-Timing only on responses that no "
                "shared cache stores; 'all' on every response; 'off' never.",
                id="strata.E024",
            )
        )
    elif mode == "all" and raw.get("ACCELERATORS"):
        errors.append(
            Warning(
                "STRATA['TIMING']['SERVER_TIMING'] is 'all' and accelerators are configured: "
                "they store the Server-Timing of the render that filled them and send it "
                "with every hit, to everyone.",
                hint="Use 'personal' (the default) in production; 'all' is for measuring "
                "without an accelerator in front.",
                id="strata.W025",
            )
        )
    interval = block.get("FLUSH_INTERVAL", TIMING_DEFAULTS["FLUSH_INTERVAL"])
    if not _is_number(interval, 0):
        errors.append(
            Error(
                f"STRATA['TIMING']['FLUSH_INTERVAL'] must be a number of seconds >= 0, "
                f"not {interval!r}.",
                hint="The default is 5: each process writes its figures at most every 5 s.",
                id="strata.E024",
            )
        )
    slow = block.get("SLOW_QUERIES", TIMING_DEFAULTS["SLOW_QUERIES"])
    if not _is_int(slow, 0) or slow > 20:
        errors.append(
            Error(
                f"STRATA['TIMING']['SLOW_QUERIES'] must be a whole number from 0 to 20, "
                f"not {slow!r}.",
                hint="The default is 3 (statements kept per request and per view).",
                id="strata.E024",
            )
        )
    return errors


def _check_purges(raw: dict) -> list:
    errors = []
    nodes = raw.get("ACCELERATORS", [])
    if not isinstance(nodes, list | tuple) or not all(
        isinstance(n, str) and re.match(r"^https?://[^/\s]+/?$", n) for n in nodes
    ):
        errors.append(
            Error(
                f"STRATA['ACCELERATORS'] must be a list of base URLs, not {nodes!r}.",
                hint="For example ['http://10.0.0.5:6081', 'http://10.0.0.6:6081'].",
                id="strata.E018",
            )
        )
    elif nodes and not raw.get("PURGE_SECRET"):
        errors.append(
            Warning(
                "STRATA['ACCELERATORS'] is set without a PURGE_SECRET: Strata's VCL refuses "
                "purges without the secret, so pages would stay stale until they expire.",
                hint="Set STRATA['PURGE_SECRET'] to the secret in the VCL (strata up exports "
                "STRATA_PURGE_SECRET).",
                id="strata.W019",
            )
        )
    for key, minimum in (("PURGE_DELAY", 0), ("PURGE_WAIT", 0), ("TAGS_HEADER_LIMIT", 100)):
        value = raw.get(key, DEFAULTS[key])
        if not _is_number(value, minimum):
            errors.append(
                Error(
                    f"STRATA['{key}'] must be a number >= {minimum}, not {value!r}.",
                    hint=f"The default is {DEFAULTS[key]}.",
                    id="strata.E020",
                )
            )
    return errors


def _check_middleware_first() -> list:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    errors = []
    django_cache = [m for m in middleware if m.startswith("django.middleware.cache.")]
    if django_cache:
        errors.append(
            Warning(
                f"{', '.join(django_cache)} run beside Strata's page cache.",
                hint="Remove them: Strata's page cache already stores whole pages, with exact "
                "invalidation; before StrataMiddleware, Django's stores nothing (Strata "
                "answers max-age=0 for browsers), after it, pages go stale until they expire.",
                id="strata.W023",
            )
        )
    if middleware[:1] != ["strata.middleware.StrataMiddleware"]:
        errors.append(
            Error(
                "The page cache is on, but strata.middleware.StrataMiddleware is not the "
                "first entry of MIDDLEWARE.",
                hint="Put it first: a page-cache hit must return before any other "
                "middleware runs, and it must see what every other middleware did.",
                id="strata.E021",
            )
        )
    return errors


@register(Tags.urls)
def check_holes_routed(app_configs=None, **kwargs):
    """Personal holes need ``strata.urls`` in the URLconf."""
    from .conf import raw_settings
    from .pages.holes import hole_prefix

    block = raw_settings().get("PAGE_CACHE")
    if not isinstance(block, dict) or not block.get("ENABLED", True):
        return []
    hole_prefix.cache_clear()
    if hole_prefix() is None:
        return [
            Warning(
                "Personal holes ({% personal %}, {% personal_csrf_token %}) have no URL.",
                hint='Add path("-/", include("strata.urls")) to your ROOT_URLCONF.',
                id="strata.W022",
            )
        ]
    return []


@register(Tags.compatibility)
def check_sessions_survive_the_cache(app_configs=None, **kwargs):
    """Django's cached_db sessions fail every logged-in request while the cache is down."""
    if getattr(settings, "SESSION_ENGINE", "") != "django.contrib.sessions.backends.cached_db":
        return []
    return [
        Warning(
            "SESSION_ENGINE is django.contrib.sessions.backends.cached_db: while the cache "
            "server is down, every request of a logged-in user fails with a server error.",
            hint='Use SESSION_ENGINE = "strata.sessions": the same sessions, falling back to '
            "the database while the cache server cannot be reached.",
            id="strata.W026",
        )
    ]


@register(Tags.compatibility)
def check_stack_environment(app_configs=None, **kwargs):
    """What `strata up`, `strata manage` or a `strata config` unit exports must reach the
    settings: a site that ignores ``STRATA_ACCELERATORS`` writes without purging Varnish."""
    ignored = []
    if os.environ.get("DATABASE_URL"):
        wanted = env.database(default="")
        actual = settings.DATABASES.get("default", {})
        if any(actual.get(k) != wanted.get(k) for k in ("ENGINE", "NAME", "HOST", "PORT")):
            ignored.append("DATABASE_URL")
    if os.environ.get("CACHE_URL"):
        wanted = env.cache(default="")
        actual = settings.CACHES.get("default", {})
        if any(actual.get(k) != wanted.get(k) for k in ("BACKEND", "LOCATION")):
            ignored.append("CACHE_URL")
    hosts = env.split_list(os.environ.get("DJANGO_ALLOWED_HOSTS", ""))
    if "*" not in settings.ALLOWED_HOSTS and set(hosts) - set(settings.ALLOWED_HOSTS):
        ignored.append("DJANGO_ALLOWED_HOSTS")
    try:
        conf = strata_settings()
    except Exception:  # a broken STRATA setting has checks of its own
        conf = None
    if conf is not None:
        exported = os.environ.get("STRATA_ACCELERATORS")
        urls = [url.rstrip("/") for url in env.split_list(exported or "")]
        if exported is not None and list(conf.accelerators) != urls:
            ignored.append("STRATA_ACCELERATORS")
        secret = os.environ.get("STRATA_PURGE_SECRET", "")
        if secret and conf.purge_secret != secret:
            ignored.append("STRATA_PURGE_SECRET")
        ttl = os.environ.get("STRATA_EDGE_TTL", "")
        if ttl.isdigit() and conf.edge_ttl != int(ttl):
            ignored.append("STRATA_EDGE_TTL")
    if not ignored:
        return []
    return [
        Warning(
            f"The settings ignore what the stack exports: {', '.join(ignored)}.",
            hint="Call strata.env.configure(globals()) as the last line of the settings "
            "module; it reads every variable `strata up` exports (docs/your-site.md).",
            id="strata.W040",
        )
    ]


def _check_query_cache(raw: dict) -> list:
    block = raw.get("QUERY_CACHE")
    if block is None:
        return []
    if not isinstance(block, dict):
        return [
            Error(
                "STRATA['QUERY_CACHE'] must be a dict.",
                hint="For example STRATA = {'QUERY_CACHE': {'TIMEOUT': 600}}.",
                id="strata.E013",
            )
        ]
    errors = []
    unknown = sorted(set(block) - set(QUERY_CACHE_DEFAULTS))
    if unknown:
        errors.append(
            Error(
                f"Unknown key(s) in STRATA['QUERY_CACHE']: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(sorted(QUERY_CACHE_DEFAULTS))}.",
                id="strata.E013",
            )
        )
    for key in ("TIMEOUT", "MAX_ROWS"):
        value = block.get(key, QUERY_CACHE_DEFAULTS[key])
        if not _is_int(value, 1):
            errors.append(
                Error(
                    f"STRATA['QUERY_CACHE']['{key}'] must be a whole number >= 1, not {value!r}.",
                    hint=f"The default is {QUERY_CACHE_DEFAULTS[key]}.",
                    id="strata.E013",
                )
            )
    for key in ("EXCLUDE_TABLES", "EXCLUDE_APPS"):
        value = block.get(key, [])
        if not isinstance(value, list | tuple | set | frozenset) or not all(
            isinstance(v, str) for v in value
        ):
            errors.append(
                Error(
                    f"STRATA['QUERY_CACHE']['{key}'] must be a list of names, not {value!r}.",
                    hint="For example ['django_session'].",
                    id="strata.E013",
                )
            )
    if block.get("ENABLED", True):
        errors += _check_cache(raw.get("CACHE", DEFAULTS["CACHE"]))
    return errors


def _check_cache(alias) -> list:
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
    location = config.get("LOCATION")
    if backend in MEMCACHED_BACKENDS:
        return _check_memcached_pool(alias, config)
    if backend == SENTINEL_BACKEND:
        return _check_sentinel(alias, config)
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


SENTINEL_BACKEND = "strata.cache.sentinel.SentinelRedisCache"


def _check_sentinel(alias: str, config: dict) -> list:
    """Redis behind Sentinel: what ``strata.cache.sentinel`` needs, and one Sentinel is not enough."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        from .cache.sentinel import options_problem, parse_location

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


MEMCACHED_BACKENDS = (
    "django.core.cache.backends.memcached.PyMemcacheCache",
    "django.core.cache.backends.memcached.PyLibMCCache",
)


def _check_memcached_pool(alias: str, config: dict) -> list:
    """A pool of Memcached servers: what ``strata.tags.pool`` needs to keep versions safe."""
    location = config.get("LOCATION") or ""
    servers = re.split("[;,]", location) if isinstance(location, str) else list(location)
    distinct = {str(server).strip() for server in servers if str(server).strip()}
    if len(distinct) < 2:
        return []
    errors = []
    try:
        import pymemcache  # noqa: F401
    except ImportError:
        errors.append(
            Error(
                f"CACHES[{alias!r}] is a pool of Memcached servers, and Strata keeps tag "
                "versions on a majority of a tag's nodes through pymemcache, which is not "
                "installed.",
                hint="pip install pymemcache (django-strata's memcached extra).",
                id="strata.E034",
            )
        )
    if len(distinct) == 2:
        errors.append(
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
        errors.append(
            Warning(
                f"CACHES[{alias!r}] is a pool of Memcached servers without OPTIONS "
                "'timeout' and 'connect_timeout': a node cut off by the network makes every "
                "request that reaches it wait for the operating system's TCP timeouts.",
                hint="Set OPTIONS = {'timeout': 0.5, 'connect_timeout': 0.5} (seconds); "
                "Strata's own version reads use these, or 1 s when unset.",
                id="strata.W036",
            )
        )
    return errors


ROUTER = "strata.replicas.ReplicaRouter"
READ_YOUR_WRITES_MIDDLEWARE = "strata.replicas.ReadYourWritesMiddleware"


def _installed_router() -> bool:
    from .replicas import ReplicaRouter

    for router in getattr(settings, "DATABASE_ROUTERS", []):
        if router == ROUTER or router == "strata.replicas.router.ReplicaRouter":
            return True
        if isinstance(router, ReplicaRouter):
            return True
        if isinstance(router, str):
            try:
                from django.utils.module_loading import import_string

                if issubclass(import_string(router), ReplicaRouter):
                    return True
            except (ImportError, TypeError):
                continue
    return False


def _check_replicas(raw: dict) -> list:
    errors = []
    seconds = raw.get("READ_YOUR_WRITES", DEFAULTS["READ_YOUR_WRITES"])
    if not _is_number(seconds, 0):
        errors.append(
            Error(
                f"STRATA['READ_YOUR_WRITES'] must be a number of seconds >= 0, not {seconds!r}.",
                hint="How long a client that wrote reads from the primary; longer than the "
                "replicas' usual lag. The default is 10.",
                id="strata.E030",
            )
        )
    replicas = raw.get("REPLICAS", DEFAULTS["REPLICAS"])
    databases = getattr(settings, "DATABASES", {})
    if not isinstance(replicas, list | tuple) or not all(isinstance(a, str) for a in replicas):
        return [
            *errors,
            Error(
                f"STRATA['REPLICAS'] must be a list of DATABASES aliases, not {replicas!r}.",
                hint="For example STRATA = {'REPLICAS': ['replica1']}.",
                id="strata.E027",
            ),
        ]
    if not replicas:
        return errors
    unknown = [a for a in replicas if a not in databases or a == "default"]
    if unknown:
        errors.append(
            Error(
                f"STRATA['REPLICAS'] names {', '.join(map(repr, unknown))}, which "
                "DATABASES does not define as a replica.",
                hint="List the aliases of read replicas, defined in DATABASES (with "
                "'TEST': {'MIRROR': 'default'}); 'default' is the primary. Known aliases: "
                f"{', '.join(databases) or 'none'}.",
                id="strata.E027",
            )
        )
    if not _installed_router():
        errors.append(
            Error(
                "STRATA['REPLICAS'] is set, but no database router sends reads there.",
                hint=f'Add DATABASE_ROUTERS = ["{ROUTER}"]: it sends writes to the primary '
                "and lets a client that wrote read its own write.",
                id="strata.E028",
            )
        )
    engines = {
        alias: databases[alias].get("ENGINE", "")
        for alias in ("default", *replicas)
        if alias in databases
    }
    other = [
        a for a, engine in engines.items() if not ("postgresql" in engine or "postgis" in engine)
    ]
    if other:
        errors.append(
            Warning(
                f"{', '.join(map(repr, other))} is not PostgreSQL: Strata cannot tell how far "
                "a replica has replayed the primary's writes, so nothing read from the "
                "replicas is cached.",
                hint="Use PostgreSQL streaming replicas, or leave STRATA['REPLICAS'] empty.",
                id="strata.W029",
            )
        )
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if READ_YOUR_WRITES_MIDDLEWARE not in middleware:
        errors.append(
            Warning(
                "STRATA['REPLICAS'] is set, but ReadYourWritesMiddleware is not in MIDDLEWARE: "
                "a client that wrote may read a lagging replica on its next request.",
                hint=f'Add "{READ_YOUR_WRITES_MIDDLEWARE}" right after '
                '"strata.middleware.StrataMiddleware".',
                id="strata.W031",
            )
        )
    return errors


PGBOUNCER_PORT = 6432  # pgbouncer's default port: a hint, not proof, of a pooler


def _is_postgresql(config: dict) -> bool:
    engine = config.get("ENGINE", "")
    return "postgresql" in engine or "postgis" in engine


def _session_state(config: dict) -> list[str]:
    """What in a database's settings needs one server connection for the whole session."""
    problems = []
    if not config.get("DISABLE_SERVER_SIDE_CURSORS"):
        problems.append(
            "server-side cursors are on (QuerySet.iterator() fetches, in later "
            "transactions, from a cursor that another server connection does not have)"
        )
    options = config.get("OPTIONS") or {}
    if options.get("server_side_binding") is True and options.get("prepare_threshold") is not None:
        problems.append(
            "psycopg prepares statements (server_side_binding with prepare_threshold): a "
            "statement prepared on one server connection is missing, or already taken, "
            "on the next"
        )
    if options.get("assume_role"):
        problems.append(
            "OPTIONS['assume_role'] runs SET ROLE once per connection: later transactions "
            "run on server connections without that role"
        )
    return problems


def _check_transaction_pooled(raw: dict) -> list:
    pooled = raw.get("TRANSACTION_POOLED", DEFAULTS["TRANSACTION_POOLED"])
    databases = getattr(settings, "DATABASES", {})
    if not isinstance(pooled, list | tuple) or not all(isinstance(a, str) for a in pooled):
        return [
            Error(
                f"STRATA['TRANSACTION_POOLED'] must be a list of DATABASES aliases, "
                f"not {pooled!r}.",
                hint="For example STRATA = {'TRANSACTION_POOLED': ['default']}: the aliases "
                "whose HOST and PORT are pgbouncer's, in pool_mode = transaction.",
                id="strata.E033",
            )
        ]
    errors = []
    wrong = [a for a in pooled if a not in databases or not _is_postgresql(databases[a])]
    if wrong:
        errors.append(
            Error(
                f"STRATA['TRANSACTION_POOLED'] names {', '.join(map(repr, wrong))}, which "
                "DATABASES does not define as a PostgreSQL database.",
                hint="List PostgreSQL aliases reached through pgbouncer. Known aliases: "
                f"{', '.join(databases) or 'none'}.",
                id="strata.E033",
            )
        )
    for alias, config in databases.items():
        if not isinstance(config, dict) or not _is_postgresql(config):
            continue
        if alias in pooled:
            why = "is listed in STRATA['TRANSACTION_POOLED']"
        elif str(config.get("PORT", "")) == str(PGBOUNCER_PORT):
            why = f"uses port {PGBOUNCER_PORT}, pgbouncer's default"
        else:
            continue
        problems = _session_state(config)
        if not problems:
            continue
        errors.append(
            Warning(
                f"DATABASES[{alias!r}] {why}, but {'; '.join(problems)}. Behind a pooler in "
                "transaction mode, each transaction may run on another server connection.",
                hint=f"Set DATABASES[{alias!r}]['DISABLE_SERVER_SIDE_CURSORS'] = True (or add "
                "?pool_mode=transaction to DATABASE_URL), keep prepare_threshold None and no "
                "assume_role. If that port is not pgbouncer in transaction mode, add "
                "'strata.W032' to SILENCED_SYSTEM_CHECKS.",
                id="strata.W032",
            )
        )
    return errors
