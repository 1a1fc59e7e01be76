"""The value checks of ``settings.STRATA``, driven by the declarations in :mod:`strata.conf`.

Each declared key is checked against its kind, under its declared ID, with its default
as the hint. Checks that look beyond one value live beside their feature, as Django's
do (``django/core/checks/caches.py``, ``database.py``):

- :mod:`strata.cache.checks`: the cache the query and page caches store in (``E010``, …)
- :mod:`strata.pages.checks`: middleware order and routed holes (``E021``, ``W022``, ``W023``)
- :mod:`strata.edge.checks`: accelerators and purges (``W019``)
- :mod:`strata.timing.checks`: ``Server-Timing`` behind accelerators (``W025``)
- :mod:`strata.replicas.checks`: replicas, read-your-writes, pooled databases
- :mod:`strata.env_checks`: what the stack exports reaches the settings (``W040``)

Sessions that survive the cache (``W026``, :mod:`strata.sessions`) are checked here too.
``strata.apps`` imports every one of them; :data:`CHECK_IDS` names what each ID means
(``docs/settings.md`` lists them, :mod:`strata.settings_doc`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import SETTINGS, Block, Setting

__all__ = ["CHECK_IDS", "check_strata_setting", "check_sessions_survive_the_cache"]

CHECK_IDS = {
    "strata.E001": "`STRATA` is not a dict",
    "strata.E002": "unknown key in `STRATA`",
    "strata.E003": "`EDGE_TTL` is not a whole number of seconds",
    "strata.E004": "`HEALTH_PATH` does not start with `/`",
    "strata.E010": "`STRATA['CACHE']` names a cache that `CACHES` does not define",
    "strata.E011": "Strata's cache is per process (LocMemCache) with `DEBUG` off",
    "strata.W011": "the same with `DEBUG` on (fine for `runserver` alone)",
    "strata.W012": "Strata's cache is a DummyCache: it caches nothing",
    "strata.E013": "`QUERY_CACHE` is not a dict, has unknown keys, or wrong values",
    "strata.W014": "Strata's cache is Redis with several servers (a lagging replica)",
    "strata.E015": "`WRITE_ROW_LIMIT` is not a whole number >= 1",
    "strata.E016": "`PAGE_CACHE` is not a dict, has unknown keys, or wrong values",
    "strata.E017": "`FRAGMENT_CACHE` is not a dict, has unknown keys, or wrong values",
    "strata.E018": "`ACCELERATORS` is not a list of `http://host:port` URLs",
    "strata.W019": "accelerators are configured without a `PURGE_SECRET`",
    "strata.E020": "`PURGE_DELAY`, `PURGE_WAIT` or `TAGS_HEADER_LIMIT` out of range",
    "strata.E021": "the page cache is on but `StrataMiddleware` is not first in `MIDDLEWARE`",
    "strata.W022": "personal holes are not routed (`strata.urls` is not included)",
    "strata.W023": "Django's per-site cache middleware runs beside Strata's page cache",
    "strata.E024": "`TIMING` is not a dict, has unknown keys, or wrong values",
    "strata.W025": "`TIMING['SERVER_TIMING']` is `'all'` behind accelerators",
    "strata.W026": "`SESSION_ENGINE` is `cached_db`: logged-in requests fail with the cache",
    "strata.E027": "`REPLICAS` is not a list of `DATABASES` aliases other than `default`",
    "strata.E028": "`REPLICAS` is set but `ReplicaRouter` is not in `DATABASE_ROUTERS`",
    "strata.W029": "a replica or the primary is not PostgreSQL: replica reads are not cached",
    "strata.E030": "`READ_YOUR_WRITES` is not a number of seconds >= 0",
    "strata.W031": "`REPLICAS` is set but `ReadYourWritesMiddleware` is not in `MIDDLEWARE`",
    "strata.W032": "a database behind a transaction-mode pooler keeps session state",
    "strata.E033": "`TRANSACTION_POOLED` is not a list of PostgreSQL `DATABASES` aliases",
    "strata.E034": "a Memcached pool without pymemcache installed",
    "strata.W035": "a pool of two Memcached servers: every version needs both",
    "strata.W036": "a pymemcache pool without `timeout`/`connect_timeout`",
    "strata.E037": "a `SentinelRedisCache` without its service name or Sentinel URLs",
    "strata.W038": "a `SentinelRedisCache` with a single Sentinel",
    "strata.E039": "Strata's cache is a DatabaseCache",
    "strata.W040": "the stack exports a variable that the settings ignore",
    "strata.E041": "`SERVER_NAME`, `PURGE_SECRET` or `BENCH_SECRET` is not a string",
    "strata.W042": "a cache block without `ENABLED` (deprecated: write `'ENABLED': True`)",
    "strata.W043": "no `BENCH_SECRET`: bench mode uses `PURGE_SECRET` (deprecated)",
    "strata.E044": "`BUS` is not a dict, has unknown keys, or wrong values",
    "strata.W045": "accelerators are configured but the cache holds no invalidation log",
    "strata.E046": "`NEAR_CACHE` is not a dict, has unknown keys, or wrong values",
    "strata.E047": "`METRICS` is not a dict, has unknown keys, or wrong values",
    "strata.W080": "the debug toolbar's middleware comes after `StrataMiddleware`",
}
"""Every ID Strata's checks can emit, with what it means."""


@register(Tags.compatibility)
def check_strata_setting(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Check each key of ``settings.STRATA`` against its declaration."""
    raw = getattr(settings, "STRATA", {})
    if not isinstance(raw, dict):
        return [
            Error(
                "The STRATA setting must be a dict.",
                hint="Write STRATA = {'EDGE_TTL': 10, ...} in your settings.",
                id="strata.E001",
            )
        ]
    known = [item.key for item in SETTINGS]
    messages = _unknown(raw, known, "STRATA", check_id="strata.E002")
    for item in SETTINGS:
        if item.key not in raw:
            continue
        if isinstance(item, Block):
            messages += _check_block(item, raw[item.key])
        else:
            messages += _check_value(item, raw[item.key], f"STRATA[{item.key!r}]")
    purge_secret = raw.get("PURGE_SECRET")
    if "BENCH_SECRET" not in raw and isinstance(purge_secret, str) and purge_secret:
        messages.append(
            Warning(
                "STRATA['BENCH_SECRET'] is not set, so bench mode (X-Strata-Bench) accepts "
                "the PURGE_SECRET: whoever may purge may also switch the caches off.",
                hint="Set STRATA['BENCH_SECRET'] (strata up exports STRATA_BENCH_SECRET), or "
                "'' to turn bench mode off.",
                id="strata.W043",
            )
        )
    return messages


def _unknown(given: dict, known: list[str], where: str, check_id: str) -> list[CheckMessage]:
    unknown = sorted(set(given) - set(known), key=str)
    if not unknown:
        return []
    return [
        Error(
            f"Unknown key(s) in {where}: {', '.join(map(str, unknown))}.",
            hint=f"Known keys: {', '.join(sorted(known))} (docs/settings.md).",
            id=check_id,
        )
    ]


def _check_value(setting: Setting, value: Any, where: str) -> list[CheckMessage]:
    if setting.kind.accepts(value):
        return []
    shown = "unset" if setting.default is None else repr(setting.default)
    return [
        Error(
            f"{where} must be {setting.kind.expected}, not {value!r}.",
            hint=f"{where}: {setting.doc.replace('``', '')}. The default is {shown} "
            "(docs/settings.md).",
            id=setting.check_id,
        )
    ]


def _check_block(block: Block, given: Any) -> list[CheckMessage]:
    where = f"STRATA[{block.key!r}]"
    if given is None:
        return []
    if not isinstance(given, dict):
        return [
            Error(
                f"{where} must be a dict.",
                hint=f"For example STRATA = {{{block.key!r}: {{'ENABLED': True}}}}.",
                id=block.check_id,
            )
        ]
    messages = _unknown(given, [s.key for s in block.settings], where, block.check_id)
    for setting in block.settings:
        if setting.key in given:
            messages += _check_value(setting, given[setting.key], f"{where}[{setting.key!r}]")
    if block.present_means_enabled and "ENABLED" not in given:
        messages.append(
            Warning(
                f"{where} has no 'ENABLED' key: the block alone turns it on, which is deprecated.",
                hint=f"Write {where} = {{'ENABLED': True, ...}}; a block without ENABLED "
                "will turn nothing on in a later version.",
                id="strata.W042",
            )
        )
    return messages


@register(Tags.compatibility)
def check_sessions_survive_the_cache(app_configs=None, **kwargs) -> list[CheckMessage]:
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
