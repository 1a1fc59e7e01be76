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
``QUERY_CACHE``           absent (off)     the ORM query cache; a dict turns it on (below)
``PAGE_CACHE``            absent (off)     whole responses in the cache; a dict turns it on
``FRAGMENT_CACHE``        absent (off)     ``{% cached %}`` blocks; a dict turns them on
                                           (``ENABLED``, ``TIMEOUT`` = ``600``)
``ACCELERATORS``          ``[]``           base URLs of the Varnish nodes to purge after
                                           commit (``http://10.0.0.5:6081``)
``PURGE_SECRET``          ``""``           sent as ``X-Purge-Secret`` with every purge; also
                                           what ``X-Strata-Bench-Secret`` must match
                                           (bench mode, :mod:`strata.timing`)
``PURGE_DELAY``           ``2.0``          seconds before each tag is purged a second time
``PURGE_WAIT``            ``1.0``          seconds a request that wrote waits for its first
                                           purge before its response goes out
``TAGS_HEADER_LIMIT``     ``7000``         bytes of ``xkey``; longer tag lists are coarsened
``TIMING``                absent (on)      time every request (``strata.timing``); a dict
                                           changes the defaults (below)
``REPLICAS``              ``[]``           ``DATABASES`` aliases of read replicas for
                                           ``strata.replicas.ReplicaRouter``
``READ_YOUR_WRITES``      ``10``           seconds a client that wrote reads from the primary
                                           (``docs/replicas.md``)
``TRANSACTION_POOLED``    ``[]``           ``DATABASES`` aliases reached through a pooler in
                                           transaction mode (``docs/pgbouncer.md``);
                                           checked only (``strata.W032``)
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

``PAGE_CACHE`` keys:

==========================  =================================  ===============================
``ENABLED``                 ``True``                           switch it off without removing
                                                               the block
``TIMEOUT``                 ``300``                            seconds a page is fresh
``STALE_WHILE_REVALIDATE``  ``60``                             seconds more it may be served
                                                               while one request refreshes it
``STATUS_TIMEOUTS``         ``{301: 60, 404: 30, 410: 30}``    shorter lifetimes by status
``IGNORED_PARAMETERS``      ``utm_*``, ``fbclid``, ``gclid``…  query parameters left out of
                                                               the key (``*`` ends a prefix)
``MAX_QUERY_STRING``        ``512``                            longer query strings bypass
``EXCLUDE_PATHS``           ``["/admin/"]``                    path prefixes never cached
``LOCK_TIMEOUT``            ``10``                             seconds a render holds its key
``LOCK_WAIT``               ``5.0``                            seconds others wait for it
==========================  =================================  ===============================

``TIMING`` keys (on unless ``ENABLED`` is ``False``; see :mod:`strata.timing`):

==========================  =================================  ===============================
``ENABLED``                 ``True``                           hooks into the database, cache
                                                               and templates, per-view figures
``SERVER_TIMING``           ``"personal"``                     who gets a ``Server-Timing``
                                                               header: ``"personal"`` (private
                                                               or no-store responses only),
                                                               ``"all"``, or ``"off"``
``FLUSH_INTERVAL``          ``5``                              seconds between writes of this
                                                               process's per-view figures
``SLOW_QUERIES``            ``3``                              slowest statements kept per
                                                               request and per view
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
    "PAGE_CACHE_DEFAULTS",
    "FRAGMENT_CACHE_DEFAULTS",
    "PageCacheSettings",
    "FragmentCacheSettings",
    "TIMING_DEFAULTS",
    "SERVER_TIMING_CHOICES",
    "TimingSettings",
]

DEFAULTS = {
    "HEALTH_PATH": "/-/health",
    "EDGE_TTL": 10,
    "SERVER_NAME": None,
    "CACHE": "default",
    "WRITE_ROW_LIMIT": 1000,
    "QUERY_CACHE": None,
    "PAGE_CACHE": None,
    "FRAGMENT_CACHE": None,
    "ACCELERATORS": [],
    "PURGE_SECRET": "",
    "PURGE_DELAY": 2.0,
    "PURGE_WAIT": 1.0,
    "TAGS_HEADER_LIMIT": 7000,
    "TIMING": None,
    "REPLICAS": [],
    "READ_YOUR_WRITES": 10,
    "TRANSACTION_POOLED": [],
}

QUERY_CACHE_DEFAULTS = {
    "ENABLED": True,
    "TIMEOUT": 600,
    "MAX_ROWS": 5000,
    "EXCLUDE_TABLES": ["django_session", "django_migrations"],
    "EXCLUDE_APPS": [],
    "CACHE_NONDETERMINISTIC": False,
}

PAGE_CACHE_DEFAULTS = {
    "ENABLED": True,
    "TIMEOUT": 300,
    "STALE_WHILE_REVALIDATE": 60,
    "STATUS_TIMEOUTS": {301: 60, 404: 30, 410: 30},
    "IGNORED_PARAMETERS": [
        "utm_*",
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
    ],
    "MAX_QUERY_STRING": 512,
    "EXCLUDE_PATHS": ["/admin/"],
    "LOCK_TIMEOUT": 10,
    "LOCK_WAIT": 5.0,
}

FRAGMENT_CACHE_DEFAULTS = {"ENABLED": True, "TIMEOUT": 600}

TIMING_DEFAULTS = {
    "ENABLED": True,
    "SERVER_TIMING": "personal",
    "FLUSH_INTERVAL": 5,
    "SLOW_QUERIES": 3,
}

SERVER_TIMING_CHOICES = ("personal", "all", "off")


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
class PageCacheSettings:
    """The validated ``STRATA['PAGE_CACHE']`` block."""

    enabled: bool
    timeout: int
    stale_while_revalidate: int
    status_timeouts: dict[int, int]
    ignored_parameters: tuple[str, ...]
    max_query_string: int
    exclude_paths: tuple[str, ...]
    lock_timeout: int
    lock_wait: float


@dataclass(frozen=True)
class FragmentCacheSettings:
    """The validated ``STRATA['FRAGMENT_CACHE']`` block."""

    enabled: bool
    timeout: int


@dataclass(frozen=True)
class TimingSettings:
    """The validated ``STRATA['TIMING']`` block."""

    enabled: bool
    server_timing: str
    flush_interval: float
    slow_queries: int


@dataclass(frozen=True)
class StrataSettings:
    """The validated values of the ``STRATA`` setting."""

    health_path: str
    edge_ttl: int
    server_name: str
    cache_alias: str
    write_row_limit: int
    query_cache: QueryCacheSettings
    page_cache: PageCacheSettings
    fragment_cache: FragmentCacheSettings
    accelerators: tuple[str, ...]
    purge_secret: str
    purge_delay: float
    purge_wait: float
    tags_header_limit: int
    timing: TimingSettings
    replicas: tuple[str, ...] = ()
    """``DATABASES`` aliases of read replicas (``strata.replicas``)."""
    read_your_writes: float = 10.0
    """Seconds a context or client that wrote reads from the primary."""

    @property
    def tracks_reads(self) -> bool:
        """True when some layer needs the tags of reads (and so the ORM hooks)."""
        return (
            self.query_cache.enabled
            or self.page_cache.enabled
            or self.fragment_cache.enabled
            or bool(self.accelerators)
        )


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
        page_cache=_page_cache(raw["PAGE_CACHE"]),
        fragment_cache=_fragment_cache(raw["FRAGMENT_CACHE"]),
        accelerators=tuple(str(url).rstrip("/") for url in raw["ACCELERATORS"]),
        purge_secret=str(raw["PURGE_SECRET"]),
        purge_delay=float(raw["PURGE_DELAY"]),
        purge_wait=float(raw["PURGE_WAIT"]),
        tags_header_limit=int(raw["TAGS_HEADER_LIMIT"]),
        timing=_timing(raw["TIMING"]),
        replicas=_replicas(raw["REPLICAS"]),
        read_your_writes=_seconds(raw["READ_YOUR_WRITES"], DEFAULTS["READ_YOUR_WRITES"]),
    )


def _replicas(value) -> tuple[str, ...]:
    # A wrong value means no replicas here; strata.E027 names it.
    if not isinstance(value, list | tuple):
        return ()
    return tuple(alias for alias in value if isinstance(alias, str))


def _seconds(value, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return float(default)


def _page_cache(block) -> PageCacheSettings:
    page = {**PAGE_CACHE_DEFAULTS, **(block if isinstance(block, dict) else {})}
    return PageCacheSettings(
        enabled=isinstance(block, dict) and bool(page["ENABLED"]),
        timeout=int(page["TIMEOUT"]),
        stale_while_revalidate=int(page["STALE_WHILE_REVALIDATE"]),
        status_timeouts={int(k): int(v) for k, v in dict(page["STATUS_TIMEOUTS"]).items()},
        ignored_parameters=tuple(page["IGNORED_PARAMETERS"]),
        max_query_string=int(page["MAX_QUERY_STRING"]),
        exclude_paths=tuple(page["EXCLUDE_PATHS"]),
        lock_timeout=int(page["LOCK_TIMEOUT"]),
        lock_wait=float(page["LOCK_WAIT"]),
    )


def _fragment_cache(block) -> FragmentCacheSettings:
    fragment = {**FRAGMENT_CACHE_DEFAULTS, **(block if isinstance(block, dict) else {})}
    return FragmentCacheSettings(
        enabled=isinstance(block, dict) and bool(fragment["ENABLED"]),
        timeout=int(fragment["TIMEOUT"]),
    )


def _timing(block) -> TimingSettings:
    # Unlike the caches, timing is on when the block is absent: it costs microseconds
    # and it is how a site sees where its time goes.
    # A wrong value falls back to its default here; strata.E024 names it.
    timing = {**TIMING_DEFAULTS, **(block if isinstance(block, dict) else {})}
    mode = timing["SERVER_TIMING"]
    try:
        interval = max(0.0, float(timing["FLUSH_INTERVAL"]))
    except (TypeError, ValueError):
        interval = float(TIMING_DEFAULTS["FLUSH_INTERVAL"])
    slow = timing["SLOW_QUERIES"]
    return TimingSettings(
        enabled=(block is None or isinstance(block, dict)) and bool(timing["ENABLED"]),
        server_timing=mode if mode in SERVER_TIMING_CHOICES else "personal",
        flush_interval=interval,
        slow_queries=min(slow, 20) if isinstance(slow, int) and slow >= 0 else 3,
    )
