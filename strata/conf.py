"""Strata's settings: one ``STRATA`` dict in Django settings, read once into one object.

========================  ===============  ===================================================
key                       default          meaning
========================  ===============  ===================================================
``HEALTH_PATH``           ``"/-/health"``  answered by :class:`strata.middleware.StrataMiddleware`
                                           before any other middleware (load balancer probes)
``EDGE_TTL``              ``10``           seconds a shared response may live in an accelerator
``SERVER_NAME``           env/host name    names the app-server process in ``X-Strata-Server``
``CACHE``                 ``"default"``    the Django cache alias for tag versions and artifacts
``WRITE_ROW_LIMIT``       ``1000``         a write touching more rows than this invalidates the
                                           whole table instead of each row's tags
``QUERY_CACHE``           absent (off)     the ORM query cache; a dict turns it on:
========================  ===============  ===================================================

``QUERY_CACHE`` keys:

==========================  =================================  ===============================
``ENABLED``                 ``True``                           switch it off without removing
                                                               the block
``TIMEOUT``                 ``600``                            seconds a cached result lives
``MAX_ROWS``                ``5000``                           larger results are not cached
``EXCLUDE_TABLES``          ``["django_session",               tables whose reads are never
                            "django_migrations"]``             cached
``EXCLUDE_APPS``            ``[]``                             app labels whose tables are
                                                               never cached
``CACHE_NONDETERMINISTIC``  ``False``                          cache queries using RANDOM(),
                                                               NOW() and the like
==========================  =================================  ===============================
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache

from django.conf import settings as django_settings

__all__ = [
    "StrataSettings",
    "QueryCacheSettings",
    "strata_settings",
    "DEFAULTS",
    "QUERY_CACHE_DEFAULTS",
]

DEFAULTS = {
    "HEALTH_PATH": "/-/health",
    "EDGE_TTL": 10,
    "SERVER_NAME": None,
    "CACHE": "default",
    "WRITE_ROW_LIMIT": 1000,
    "QUERY_CACHE": None,
}

QUERY_CACHE_DEFAULTS = {
    "ENABLED": True,
    "TIMEOUT": 600,
    "MAX_ROWS": 5000,
    "EXCLUDE_TABLES": ["django_session", "django_migrations"],
    "EXCLUDE_APPS": [],
    "CACHE_NONDETERMINISTIC": False,
}


@dataclass(frozen=True)
class QueryCacheSettings:
    """The validated ``STRATA['QUERY_CACHE']`` block."""

    enabled: bool
    timeout: int
    max_rows: int
    exclude_tables: frozenset[str]
    exclude_apps: frozenset[str]
    cache_nondeterministic: bool


@dataclass(frozen=True)
class StrataSettings:
    """The validated values of the ``STRATA`` setting."""

    health_path: str
    edge_ttl: int
    server_name: str
    cache_alias: str
    write_row_limit: int
    query_cache: QueryCacheSettings


def raw_settings() -> dict:
    """``settings.STRATA`` merged over the defaults (unvalidated: see ``strata.checks``)."""
    raw = getattr(django_settings, "STRATA", {})
    return {**DEFAULTS, **raw} if isinstance(raw, dict) else dict(DEFAULTS)


@cache
def strata_settings() -> StrataSettings:
    """Read ``settings.STRATA`` once; system checks report what is wrong with it."""
    raw = raw_settings()
    server_name = raw["SERVER_NAME"] or os.environ.get("STRATA_SERVER_NAME") or socket.gethostname()
    block = raw["QUERY_CACHE"]
    query = {**QUERY_CACHE_DEFAULTS, **(block if isinstance(block, dict) else {})}
    return StrataSettings(
        health_path=str(raw["HEALTH_PATH"]),
        edge_ttl=int(raw["EDGE_TTL"]),
        server_name=str(server_name),
        cache_alias=str(raw["CACHE"]),
        write_row_limit=int(raw["WRITE_ROW_LIMIT"]),
        query_cache=QueryCacheSettings(
            enabled=isinstance(block, dict) and bool(query["ENABLED"]),
            timeout=int(query["TIMEOUT"]),
            max_rows=int(query["MAX_ROWS"]),
            exclude_tables=frozenset(query["EXCLUDE_TABLES"]),
            exclude_apps=frozenset(query["EXCLUDE_APPS"]),
            cache_nondeterministic=bool(query["CACHE_NONDETERMINISTIC"]),
        ),
    )
