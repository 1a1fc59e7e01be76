"""Strata's settings: one ``STRATA`` dict in Django settings, read once into one object.

Each key is declared once, in :data:`SETTINGS`: its kind (type and range), default,
the system check ID that reports a wrong value, and one line of documentation. The
declarations coerce the dict into :class:`StrataSettings` (:func:`strata_settings`),
drive the value checks (:mod:`strata.checks`) and write ``docs/settings.md``
(:mod:`strata.settings_doc`), where every key is listed.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

from .kinds import Choice, Flag, Kind, Names, Seconds, StatusMap, Text, Urls, Whole

__all__ = [
    "Block",
    "Setting",
    "SETTINGS",
    "StrataSettings",
    "QueryCacheSettings",
    "PageCacheSettings",
    "FragmentCacheSettings",
    "TimingSettings",
    "MetricsSettings",
    "BusSettings",
    "NearCacheSettings",
    "declared",
    "default",
    "settings_table",
    "strata_settings",
]


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
class MetricsSettings:
    """The validated ``STRATA['METRICS']`` block."""

    enabled: bool


@dataclass(frozen=True)
class BusSettings:
    """The validated ``STRATA['BUS']`` block."""

    enabled: bool
    max_entries: int
    fence_after: float


@dataclass(frozen=True)
class NearCacheSettings:
    """The validated ``STRATA['NEAR_CACHE']`` block."""

    enabled: bool
    max_bytes: int
    silence: float


@dataclass(frozen=True)
class Setting:
    """One key of ``STRATA`` (or of one of its blocks), declared once."""

    key: str
    kind: Kind
    default: Any
    check_id: str
    doc: str
    attribute: str = ""
    """The name on the settings object; the key in lower case unless given."""

    @property
    def name(self) -> str:
        """The attribute :func:`strata_settings` gives this setting's value."""
        return self.attribute or self.key.lower()

    def value(self, given: Any) -> Any:
        """``given`` coerced; a wrong value is the default (its check names it)."""
        return self.kind.convert(given if self.kind.accepts(given) else self.default)


@dataclass(frozen=True)
class Block:
    """A key of ``STRATA`` whose value is a dict of its own keys (a layer's switches)."""

    key: str
    check_id: str
    doc: str
    settings: tuple[Setting, ...]
    attribute: str
    holds: type
    """The class of the settings object's attribute (its keys, in lower case)."""
    present_means_enabled: bool = False
    """The old form: a block without ``ENABLED`` turns its layer on (``strata.W042``)."""

    def setting(self, key: str) -> Setting:
        """The declaration of one key of this block."""
        return next(s for s in self.settings if s.key == key)


_IGNORED_PARAMETERS = [
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
]


def _switch(layer: str, check_id: str) -> Setting:
    return Setting(
        "ENABLED",
        Flag(),
        False,
        check_id,
        f"``True`` turns {layer} on (a block without ``ENABLED`` is on too, deprecated: "
        "``strata.W042``)",
    )


QUERY_CACHE = Block(
    "QUERY_CACHE",
    "strata.E013",
    "the ORM query cache (``docs/querycache.md``)",
    (
        _switch("the query cache", "strata.E013"),
        Setting("TIMEOUT", Whole(1), 600, "strata.E013", "seconds a cached result lives"),
        Setting("MAX_ROWS", Whole(1), 5000, "strata.E013", "larger results are not cached"),
        Setting(
            "EXCLUDE_TABLES",
            Names(frozenset),
            ["django_session", "django_migrations"],
            "strata.E013",
            "tables whose reads are never cached",
        ),
        Setting(
            "EXCLUDE_APPS",
            Names(frozenset),
            [],
            "strata.E013",
            "app labels whose tables are never cached",
        ),
        Setting(
            "CACHE_NONDETERMINISTIC",
            Flag(),
            False,
            "strata.E013",
            "cache queries using ``RANDOM()``, ``NOW()`` and the like",
        ),
    ),
    attribute="query_cache",
    holds=QueryCacheSettings,
    present_means_enabled=True,
)

PAGE_CACHE = Block(
    "PAGE_CACHE",
    "strata.E016",
    "whole responses in the cache (``docs/pages.md``)",
    (
        _switch("the page cache", "strata.E016"),
        Setting("TIMEOUT", Whole(1), 300, "strata.E016", "seconds a page is fresh"),
        Setting(
            "STALE_WHILE_REVALIDATE",
            Whole(0),
            60,
            "strata.E016",
            "seconds more a page may be served while one request refreshes it",
        ),
        Setting(
            "STATUS_TIMEOUTS",
            StatusMap(),
            {301: 60, 404: 30, 410: 30},
            "strata.E016",
            "shorter lifetimes by status code",
        ),
        Setting(
            "IGNORED_PARAMETERS",
            Names(tuple),
            _IGNORED_PARAMETERS,
            "strata.E016",
            "query parameters left out of the key (``*`` ends a prefix)",
        ),
        Setting(
            "MAX_QUERY_STRING",
            Whole(0),
            512,
            "strata.E016",
            "longer query strings bypass the page cache",
        ),
        Setting(
            "EXCLUDE_PATHS", Names(tuple), ["/admin/"], "strata.E016", "path prefixes never cached"
        ),
        Setting(
            "LOCK_TIMEOUT",
            Seconds(1, held_as=int),
            10,
            "strata.E016",
            "seconds a render holds its key",
        ),
        Setting("LOCK_WAIT", Seconds(0), 5.0, "strata.E016", "seconds others wait for that render"),
    ),
    attribute="page_cache",
    holds=PageCacheSettings,
    present_means_enabled=True,
)

FRAGMENT_CACHE = Block(
    "FRAGMENT_CACHE",
    "strata.E017",
    "``{% cached %}`` blocks",
    (
        _switch("``{% cached %}`` blocks", "strata.E017"),
        Setting("TIMEOUT", Whole(1), 600, "strata.E017", "seconds a cached block lives"),
    ),
    attribute="fragment_cache",
    holds=FragmentCacheSettings,
    present_means_enabled=True,
)

# Unlike the caches, timing is on without its block: it costs microseconds and it is how
# a site sees where its time goes.
TIMING = Block(
    "TIMING",
    "strata.E024",
    "per-request timings (:mod:`strata.timing`)",
    (
        Setting(
            "ENABLED",
            Flag(),
            True,
            "strata.E024",
            "hooks into the database, cache and templates, per-view figures",
        ),
        Setting(
            "SERVER_TIMING",
            Choice(("personal", "all", "off")),
            "personal",
            "strata.E024",
            "who gets a ``Server-Timing`` header: ``personal`` (private or no-store "
            "responses), ``all`` (``strata.W025`` behind accelerators) or ``off``",
        ),
        Setting(
            "FLUSH_INTERVAL",
            Seconds(0),
            5,
            "strata.E024",
            "seconds between writes of this process's per-view figures",
        ),
        Setting(
            "SLOW_QUERIES",
            Whole(0, 20),
            3,
            "strata.E024",
            "slowest statements kept per request and per view",
        ),
    ),
    attribute="timing",
    holds=TimingSettings,
)

# Like timing, metrics are on without their block: well under a microsecond a request.
METRICS = Block(
    "METRICS",
    "strata.E047",
    "Prometheus metrics at ``/-/metrics`` (``docs/metrics.md``)",
    (
        Setting(
            "ENABLED",
            Flag(),
            True,
            "strata.E047",
            "count requests by view and outcome, and their time (the other metrics are "
            "counted where they happen, whatever this says)",
        ),
    ),
    attribute="metrics",
    holds=MetricsSettings,
)

# Like timing, the bus is on without its block: on Redis every writer then reaches the
# accelerators through it, whatever its own settings say (docs/bus.md).
BUS = Block(
    "BUS",
    "strata.E044",
    "the invalidation bus: a log in the version store that ``strata_purger`` delivers "
    "to the accelerators (``docs/bus.md``)",
    (
        Setting(
            "ENABLED",
            Flag(),
            True,
            "strata.E044",
            "on Redis, every version change is logged and only ``strata_purger`` purges "
            "the accelerators; ``False``: each writer purges them itself",
        ),
        Setting(
            "MAX_ENTRIES",
            Whole(100),
            100_000,
            "strata.E044",
            "entries the log keeps at most; a node that missed trimmed ones is purged whole",
        ),
        Setting(
            "FENCE_AFTER",
            Seconds(0.1),
            0.5,
            "strata.E044",
            "seconds an entry may wait for delivery before its node counts as behind "
            "(fenced: ``/-/varnish-ready`` fails)",
        ),
    ),
    attribute="bus",
    holds=BusSettings,
)

# On without its block, like the bus: it serves what Redis would, only without the round
# trip, and it is off by itself wherever Redis cannot push (docs/near-cache.md).
NEAR_CACHE = Block(
    "NEAR_CACHE",
    "strata.E046",
    "a copy of hot versions, pages, query results and fragments in each process, kept "
    "exact by Redis's invalidation pushes (``docs/near-cache.md``)",
    (
        Setting(
            "ENABLED",
            Flag(),
            True,
            "strata.E046",
            "on Django's Redis cache, keep what this process read from it while Redis says "
            "it has not changed",
        ),
        Setting(
            "MAX_BYTES",
            Whole(0),
            32 * 1024 * 1024,
            "strata.E046",
            "bytes of copies kept per process and cache at most (the oldest go first)",
        ),
        Setting(
            "SILENCE",
            Seconds(0.2),
            1.0,
            "strata.E046",
            "seconds without a word on the push connection after which every copy is "
            "dropped, and none is used until Redis answers again",
        ),
    ),
    attribute="near_cache",
    holds=NearCacheSettings,
)

SETTINGS: tuple[Setting | Block, ...] = (
    Setting(
        "HEALTH_PATH",
        Text(prefix="/"),
        "/-/health",
        "strata.E004",
        "answered by ``StrataMiddleware`` before any other middleware (load balancer probes)",
    ),
    Setting(
        "EDGE_TTL",
        Whole(0),
        10,
        "strata.E003",
        "seconds a shared response may live in an accelerator",
    ),
    Setting(
        "SERVER_NAME",
        Text(optional=True),
        None,
        "strata.E041",
        "names the process in ``X-Strata-Server`` (default: ``$STRATA_SERVER_NAME``, "
        "else the host name)",
    ),
    Setting(
        "CACHE",
        Text(),
        "default",
        "strata.E010",
        "the ``CACHES`` alias for tag versions and cached artifacts",
        attribute="cache_alias",
    ),
    Setting(
        "WRITE_ROW_LIMIT",
        Whole(1),
        1000,
        "strata.E015",
        "a write touching more rows invalidates the whole table instead of each row's tags",
    ),
    QUERY_CACHE,
    PAGE_CACHE,
    FRAGMENT_CACHE,
    Setting(
        "ACCELERATORS",
        Urls(),
        [],
        "strata.E018",
        "base URLs of the Varnish nodes to purge after commit (``http://10.0.0.5:6081``)",
    ),
    Setting(
        "PURGE_SECRET",
        Text(),
        "",
        "strata.E041",
        "sent as ``X-Purge-Secret`` with every purge (``strata.W019``)",
    ),
    Setting(
        "BENCH_SECRET",
        Text(optional=True),
        None,
        "strata.E041",
        "what ``X-Strata-Bench-Secret`` must match to switch the caches off for one request "
        '(``strata bench``); ``""`` turns bench mode off; unset, ``PURGE_SECRET`` '
        "(deprecated: ``strata.W043``)",
    ),
    Setting(
        "PURGE_DELAY", Seconds(0), 2.0, "strata.E020", "seconds before each tag is purged again"
    ),
    Setting(
        "PURGE_WAIT",
        Seconds(0),
        1.0,
        "strata.E020",
        "seconds a request that wrote waits for its first purge before its response goes out",
    ),
    BUS,
    NEAR_CACHE,
    Setting(
        "TAGS_HEADER_LIMIT",
        Whole(100),
        7000,
        "strata.E020",
        "bytes of ``xkey``; longer tag lists are coarsened",
    ),
    TIMING,
    METRICS,
    Setting(
        "REPLICAS",
        Names(tuple),
        [],
        "strata.E027",
        "``DATABASES`` aliases of read replicas for ``strata.replicas.ReplicaRouter``",
    ),
    Setting(
        "READ_YOUR_WRITES",
        Seconds(0),
        10,
        "strata.E030",
        "seconds a client that wrote reads from the primary (``docs/replicas.md``)",
    ),
    Setting(
        "TRANSACTION_POOLED",
        Names(tuple),
        [],
        "strata.E033",
        "``DATABASES`` aliases behind a pooler in transaction mode, checked only "
        "(``strata.W032``, ``docs/pgbouncer.md``)",
    ),
)


def declared(key: str) -> Setting | Block:
    """The declaration of a top-level key of ``STRATA``."""
    return next(s for s in SETTINGS if s.key == key)


def default(key: str, block: str | None = None) -> Any:
    """The declared default of ``STRATA[key]`` (or of ``STRATA[block][key]``)."""
    if block is not None:
        container = declared(block)
        assert isinstance(container, Block)
        return container.setting(key).default
    setting = declared(key)
    assert isinstance(setting, Setting)
    return setting.default


@dataclass(frozen=True)
class StrataSettings:
    """The validated values of the ``STRATA`` setting (see :data:`SETTINGS`)."""

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
    bench_secret: str
    purge_delay: float
    purge_wait: float
    bus: BusSettings
    near_cache: NearCacheSettings
    tags_header_limit: int
    timing: TimingSettings
    metrics: MetricsSettings
    replicas: tuple[str, ...]
    read_your_writes: float
    transaction_pooled: tuple[str, ...]

    @property
    def tracks_reads(self) -> bool:
        """True when some layer needs the tags of reads (and so the ORM hooks)."""
        return (
            self.query_cache.enabled
            or self.page_cache.enabled
            or self.fragment_cache.enabled
            or bool(self.accelerators)
        )


@cache
def strata_settings() -> StrataSettings:
    """Read ``settings.STRATA`` once; a wrong value is its default, and a check names it.

    Read again after ``STRATA`` changes (``override_settings`` in tests).
    """
    raw = getattr(django_settings, "STRATA", {})
    raw = raw if isinstance(raw, dict) else {}  # strata.E001 says so
    values: dict[str, Any] = {}
    for item in SETTINGS:
        if isinstance(item, Block):
            values[item.attribute] = _read_block(item, raw.get(item.key))
        else:
            values[item.name] = item.value(raw.get(item.key, item.default))
    values["server_name"] = str(
        values["server_name"] or os.environ.get("STRATA_SERVER_NAME") or socket.gethostname()
    )
    if values["bench_secret"] is None:
        values["bench_secret"] = values["purge_secret"]  # the old way: strata.W043
    return StrataSettings(**values)


def _forget_settings(setting: str, **kwargs) -> None:
    if setting == "STRATA":
        strata_settings.cache_clear()


setting_changed.connect(_forget_settings, dispatch_uid="strata-settings-changed")


def _read_block(block: Block, given: Any) -> Any:
    given = given if isinstance(given, dict) else None
    values = {s.name: s.value((given or {}).get(s.key, s.default)) for s in block.settings}
    if block.present_means_enabled and given is not None and "ENABLED" not in given:
        values["enabled"] = True
    return block.holds(**values)


def settings_table() -> str:
    """Every declared setting as Markdown: the body of ``docs/settings.md``."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated by `python -m strata.settings_doc > docs/settings.md` from the",
        "     declarations in strata/conf.py: edit those, not this file. -->",
        "",
        "Strata reads one dict from Django's settings, `STRATA`, once per process. Every key",
        "is optional. A wrong value is reported by the system check named beside it, and the",
        "default is used meanwhile.",
        "",
        "```python",
        'STRATA = {"QUERY_CACHE": {"ENABLED": True}, "PAGE_CACHE": {"ENABLED": True}}',
        "```",
        "",
        *_table(SETTINGS),
    ]
    for block in SETTINGS:
        if isinstance(block, Block):
            about = _markdown(block.doc)
            lines += ["", f"## `{block.key}`", "", f"{about[0].upper()}{about[1:]}.", ""]
            lines += _table(block.settings)
    return "\n".join(lines) + "\n"


def _table(items) -> list[str]:
    rows = ["| key | default | kind | check | meaning |", "|---|---|---|---|---|"]
    for item in items:
        if isinstance(item, Block):
            row = (item.key, "see below", "dict", item.check_id, item.doc)
        else:
            shown = "unset" if item.default is None else f"`{item.default!r}`"
            row = (item.key, shown, item.kind.expected, item.check_id, item.doc)
        key, shown, kind, check_id, doc = row
        rows.append(f"| `{key}` | {shown} | {kind} | `{check_id}` | {_markdown(doc)} |")
    return rows


def _markdown(text: str) -> str:
    """reStructuredText literals and roles, as the docs write them."""
    for role in (":mod:", ":func:", ":class:"):
        text = text.replace(role, "")
    return text.replace("``", "`").replace("|", "\\|")
