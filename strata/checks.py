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
=============  =====================================================================
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import DEFAULTS, QUERY_CACHE_DEFAULTS

LOCAL_BACKENDS = ("django.core.cache.backends.locmem.LocMemCache",)
DUMMY_BACKENDS = ("django.core.cache.backends.dummy.DummyCache",)


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


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
    return errors


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
    if backend in DUMMY_BACKENDS:
        return [
            Warning(
                f"The query cache uses CACHES[{alias!r}], a DummyCache: nothing is cached.",
                hint="Point STRATA['CACHE'] at a real cache, or turn the query cache off.",
                id="strata.W012",
            )
        ]
    location = config.get("LOCATION")
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
                "(STRATA['CACHE'] = an alias with one LOCATION).",
                id="strata.W014",
            )
        ]
    return []
