"""System checks explain a misconfigured STRATA setting, with an ID and a hint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.checks import run_checks

from strata.cache.checks import check_strata_cache
from strata.checks import CHECK_IDS, check_sessions_survive_the_cache, check_strata_setting
from strata.conf import SETTINGS, Block, Setting, strata_settings
from strata.pages.checks import check_middleware_order
from strata.settings_doc import settings_document

REPOSITORY = Path(__file__).resolve().parent.parent
REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379",
    }
}
ON = {"ENABLED": True}


def ids(errors):
    return [error.id for error in errors]


def strata_ids(settings, **changes) -> list[str]:
    """The IDs of every Strata check ``manage.py check`` runs, after ``changes``."""
    for name, value in changes.items():
        setattr(settings, name, value)
    return [m.id for m in run_checks() if m.id and m.id.startswith("strata.")]


# The declarations: one per setting, driving coercion, the value checks and the docs


def test_the_default_setting_passes(settings):
    settings.STRATA = {}
    assert check_strata_setting() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not a dict", ["strata.E001"]),
        ({"EDGE_TTLL": 5}, ["strata.E002"]),
        ({"EDGE_TTL": -1}, ["strata.E003"]),
        ({"EDGE_TTL": "10"}, ["strata.E003"]),
        ({"HEALTH_PATH": "health"}, ["strata.E004"]),
        ({"WRITE_ROW_LIMIT": 0}, ["strata.E015"]),
        ({"WRITE_ROW_LIMIT": True}, ["strata.E015"]),
        ({"SERVER_NAME": 7}, ["strata.E041"]),
        ({"BENCH_SECRET": b"bytes"}, ["strata.E041"]),
    ],
)
def test_each_mistake_has_its_own_check(settings, value, expected):
    settings.STRATA = value
    errors = check_strata_setting()
    assert ids(errors) == expected
    assert all(error.hint for error in errors)


def _declarations() -> list:
    found = []
    for item in SETTINGS:
        if isinstance(item, Block):
            found += [pytest.param(item.key, s, id=f"{item.key}.{s.key}") for s in item.settings]
        else:
            found.append(pytest.param(None, item, id=item.key))
    return found


@pytest.mark.parametrize(("block", "setting"), _declarations())
def test_every_declared_setting_reports_a_wrong_value_with_its_id_and_default(
    settings, block, setting: Setting
):
    wrong = object()
    given = {setting.key: wrong}
    settings.STRATA = {block: {"ENABLED": True, **given}} if block else given
    (error,) = check_strata_setting()
    assert error.id == setting.check_id
    assert setting.kind.expected in error.msg and "default" in str(error.hint)


@pytest.mark.parametrize(("block", "setting"), _declarations())
def test_every_declared_default_is_a_valid_value(block, setting: Setting):
    assert setting.default is None or setting.kind.accepts(setting.default)


def test_a_wrong_value_reads_as_its_default(settings):
    settings.STRATA = {"EDGE_TTL": "10", "PAGE_CACHE": {"ENABLED": True, "TIMEOUT": 0}}
    conf = strata_settings()
    assert (conf.edge_ttl, conf.page_cache.enabled, conf.page_cache.timeout) == (10, True, 300)


def test_settings_are_read_once_and_again_when_strata_changes(settings):
    settings.STRATA = {"EDGE_TTL": 30}
    assert strata_settings() is strata_settings()
    settings.STRATA = {"EDGE_TTL": 40}
    assert strata_settings().edge_ttl == 40


def test_docs_settings_md_is_what_the_declarations_generate():
    written = (REPOSITORY / "docs" / "settings.md").read_text()
    assert written == settings_document(), "run: python -m strata.settings_doc > docs/settings.md"


# Explicit switches


@pytest.mark.parametrize("block", ["QUERY_CACHE", "PAGE_CACHE", "FRAGMENT_CACHE"])
def test_a_cache_block_without_enabled_still_turns_it_on_but_is_deprecated(settings, block):
    settings.STRATA = {block: {}}
    assert getattr(strata_settings(), block.lower()).enabled
    (warning,) = check_strata_setting()
    assert warning.id == "strata.W042" and "'ENABLED': True" in warning.hint


@pytest.mark.parametrize("block", ["QUERY_CACHE", "PAGE_CACHE", "FRAGMENT_CACHE"])
def test_a_cache_is_on_only_when_enabled_says_so(settings, block):
    settings.STRATA = {block: {"ENABLED": True}}
    assert getattr(strata_settings(), block.lower()).enabled
    settings.STRATA = {block: {"ENABLED": False, "TIMEOUT": 60}}
    assert not getattr(strata_settings(), block.lower()).enabled
    assert check_strata_setting() == []
    settings.STRATA = {}
    assert not getattr(strata_settings(), block.lower()).enabled


def test_timing_is_on_without_its_block(settings):
    settings.STRATA = {}
    assert strata_settings().timing.enabled
    settings.STRATA = {"TIMING": {"ENABLED": False}}
    assert not strata_settings().timing.enabled


# Bench mode's secret


def test_the_bench_secret_is_its_own_setting(settings):
    settings.STRATA = {"PURGE_SECRET": "purges-only", "BENCH_SECRET": "bench-only"}
    assert (strata_settings().purge_secret, strata_settings().bench_secret) == (
        "purges-only",
        "bench-only",
    )
    assert check_strata_setting() == []


def test_without_a_bench_secret_bench_mode_takes_the_purge_secret_with_a_warning(settings):
    settings.STRATA = {"PURGE_SECRET": "both-of-them"}
    assert strata_settings().bench_secret == "both-of-them"
    (warning,) = check_strata_setting()
    assert warning.id == "strata.W043" and "BENCH_SECRET" in warning.hint


def test_an_empty_bench_secret_turns_bench_mode_off(settings):
    settings.STRATA = {"PURGE_SECRET": "purges-only", "BENCH_SECRET": ""}
    assert strata_settings().bench_secret == ""
    assert check_strata_setting() == []


# The query cache


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("on", ["strata.E013"]),
        ({**ON, "TIMEOUT": 0}, ["strata.E013"]),
        ({**ON, "MAX_ROWS": "many"}, ["strata.E013"]),
        ({**ON, "EXCLUDE_TABLES": "django_session"}, ["strata.E013"]),
        ({**ON, "TIMEOUTS": 5}, ["strata.E013"]),
    ],
)
def test_a_bad_query_cache_block_is_explained(settings, block, expected):
    settings.STRATA = {"QUERY_CACHE": block}
    settings.CACHES = REDIS
    assert ids(check_strata_setting()) == expected


# The cache Strata keeps versions in


def test_the_query_cache_needs_the_cache_it_names(settings):
    settings.STRATA = {"QUERY_CACHE": ON, "CACHE": "versions"}
    errors = check_strata_cache()
    assert ids(errors) == ["strata.E010"] and "versions" in errors[0].msg


@pytest.mark.parametrize(("debug", "expected"), [(False, "strata.E011"), (True, "strata.W011")])
def test_a_per_process_cache_is_refused_in_production(settings, debug, expected):
    settings.DEBUG = debug
    settings.STRATA = {"QUERY_CACHE": ON}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert ids(check_strata_cache()) == [expected]


def test_a_dummy_cache_caches_nothing(settings):
    settings.STRATA = {"QUERY_CACHE": ON}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    assert ids(check_strata_cache()) == ["strata.W012"]


def test_a_database_cache_is_refused(settings):
    settings.STRATA = {"PAGE_CACHE": ON}
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "t"}
    }
    assert ids(check_strata_cache()) == ["strata.E039"]


def test_redis_replicas_could_serve_lagging_versions(settings):
    settings.STRATA = {"QUERY_CACHE": ON}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": ["redis://primary:6379", "redis://replica:6379"],
        }
    }
    assert ids(check_strata_cache()) == ["strata.W014"]


def test_redis_replicas_in_one_location_string_are_seen_too(settings):
    settings.STRATA = {"QUERY_CACHE": ON}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://primary:6379;redis://replica:6379",
        }
    }
    errors = check_strata_cache()
    assert ids(errors) == ["strata.W014"] and "SentinelRedisCache" in errors[0].hint


SENTINELS = ["sentinel://10.0.0.5:26379", "sentinel://10.0.0.6:26379"]


@pytest.mark.parametrize(
    ("location", "options", "expected"),
    [
        (SENTINELS, {"service_name": "strata"}, []),
        (SENTINELS, {}, ["strata.E037"]),
        (SENTINELS, {"service_name": "strata", "pool_class": "x.Pool"}, ["strata.E037"]),
        (SENTINELS, {"service_name": "strata", "primary_check_interval": "1"}, ["strata.E037"]),
        (["redis://10.0.0.5:6379"], {"service_name": "strata"}, ["strata.E037"]),
        (SENTINELS[:1], {"service_name": "strata"}, ["strata.W038"]),
    ],
)
def test_a_sentinel_cache_needs_its_service_and_sentinels(settings, location, options, expected):
    settings.STRATA = {"QUERY_CACHE": ON}
    settings.CACHES = {
        "default": {
            "BACKEND": "strata.cache.sentinel.SentinelRedisCache",
            "LOCATION": location,
            "OPTIONS": options,
        }
    }
    assert ids(check_strata_cache()) == expected


def test_a_switched_off_query_cache_needs_no_cache(settings):
    settings.STRATA = {"QUERY_CACHE": {"ENABLED": False}, "CACHE": "absent"}
    assert check_strata_setting() == [] and check_strata_cache() == []


# Whole pages


def test_the_page_cache_needs_strata_middleware_first(settings):
    middleware = [m for m in settings.MIDDLEWARE if "StrataMiddleware" not in m]
    assert "strata.E021" in strata_ids(
        settings, MIDDLEWARE=[*middleware, "strata.middleware.StrataMiddleware"]
    )


def test_only_the_debug_toolbar_may_come_before_strata_middleware(settings):
    toolbar = "debug_toolbar.middleware.DebugToolbarMiddleware"
    middleware = [m for m in settings.MIDDLEWARE if "StrataMiddleware" not in m]
    strata = "strata.middleware.StrataMiddleware"

    def e021(order):
        settings.MIDDLEWARE = order
        return [m.id for m in check_middleware_order()].count("strata.E021")

    assert e021([toolbar, strata, *middleware]) == 0
    assert e021([toolbar, middleware[0], strata, *middleware[1:]]) == 1


def test_djangos_own_page_cache_beside_strata_is_flagged(settings):
    middleware = [*settings.MIDDLEWARE, "django.middleware.cache.FetchFromCacheMiddleware"]
    assert "strata.W023" in strata_ids(settings, MIDDLEWARE=middleware)


def test_personal_holes_without_strata_urls_are_flagged(settings):
    assert "strata.W022" in strata_ids(settings, ROOT_URLCONF="newsroom.urls")


@pytest.mark.parametrize(
    ("strata", "check_id"),
    [
        ({"PAGE_CACHE": []}, "strata.E016"),
        ({"PAGE_CACHE": {**ON, "TIMEOUT": 0}}, "strata.E016"),
        ({"PAGE_CACHE": {**ON, "STATUS_TIMEOUTS": {"404": 30}}}, "strata.E016"),
        ({"PAGE_CACHE": {**ON, "NOPE": 1}}, "strata.E016"),
        ({"FRAGMENT_CACHE": {**ON, "TIMEOUT": "long"}}, "strata.E017"),
        ({"ACCELERATORS": ["varnish:6081"]}, "strata.E018"),
        ({"ACCELERATORS": ["http://127.0.0.1:6081"], "PURGE_SECRET": ""}, "strata.W019"),
        ({"PURGE_DELAY": -1}, "strata.E020"),
        ({"TIMING": {"SERVER_TIMING": "public"}}, "strata.E024"),
        ({"BUS": {"MAX_ENTRIES": 10}}, "strata.E044"),
        ({"BUS": {"FENCE_AFTER": "soon"}}, "strata.E044"),
        ({"NEAR_CACHE": {"MAX_BYTES": -1}}, "strata.E046"),
        ({"NEAR_CACHE": {"SILENCE": 0}}, "strata.E046"),
        ({"NEAR_CACHE": {"SIZE": "64M"}}, "strata.E046"),
    ],
)
def test_page_settings_are_checked(settings, strata, check_id):
    assert check_id in strata_ids(settings, STRATA={**settings.STRATA, **strata})


def test_timings_on_every_response_behind_an_accelerator_are_flagged(settings):
    strata = {
        "TIMING": {"SERVER_TIMING": "all"},
        "ACCELERATORS": ["http://127.0.0.1:6081"],
        "PURGE_SECRET": "s",
        "BENCH_SECRET": "",
        "BUS": {"ENABLED": False},
    }
    assert strata_ids(settings, STRATA={**settings.STRATA, **strata}) == ["strata.W025"]


def test_accelerators_behind_a_cache_that_keeps_no_log_are_flagged(settings):
    """The test settings' cache is a file cache: only processes that know the
    accelerators purge them."""
    strata = {"ACCELERATORS": ["http://127.0.0.1:6081"], "PURGE_SECRET": "s", "BENCH_SECRET": ""}
    assert strata_ids(settings, STRATA={**settings.STRATA, **strata}) == ["strata.W045"]
    strata["BUS"] = {"ENABLED": False}
    assert strata_ids(settings, STRATA={**settings.STRATA, **strata}) == []


def test_the_demo_settings_pass_every_check(settings):
    assert strata_ids(settings) == []


def test_djangos_cached_db_sessions_are_flagged_with_the_engine_that_survives_the_cache(settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    (warning,) = check_sessions_survive_the_cache()
    assert warning.id == "strata.W026"
    assert "strata.sessions" in warning.hint

    settings.SESSION_ENGINE = "strata.sessions"
    assert check_sessions_survive_the_cache() == []


# Database replicas (tests.settings: "default" and "replica", both SQLite)

_ROUTERS = ["strata.replicas.ReplicaRouter"]
_REPLICA_MIDDLEWARE = "strata.replicas.ReadYourWritesMiddleware"


def _with_replicas(settings, strata, routers=_ROUTERS, middleware=True):
    stack = list(settings.MIDDLEWARE)
    if middleware:
        stack.insert(1, _REPLICA_MIDDLEWARE)
    return strata_ids(
        settings,
        STRATA={**settings.STRATA, **strata},
        DATABASE_ROUTERS=routers,
        MIDDLEWARE=stack,
    )


def test_replicas_with_the_router_and_middleware_pass_except_for_not_being_postgresql(settings):
    # SQLite cannot say how far a replica has replayed: nothing read there is cached.
    assert _with_replicas(settings, {"REPLICAS": ["replica"]}) == ["strata.W029"]


@pytest.mark.parametrize(
    ("strata", "check_id"),
    [
        ({"REPLICAS": "replica"}, "strata.E027"),
        ({"REPLICAS": ["replica2"]}, "strata.E027"),
        ({"REPLICAS": ["default"]}, "strata.E027"),
        ({"REPLICAS": ["replica"], "READ_YOUR_WRITES": -1}, "strata.E030"),
    ],
)
def test_replica_settings_are_checked(settings, strata, check_id):
    assert check_id in _with_replicas(settings, strata)


def test_replicas_without_the_router_are_an_error(settings):
    assert "strata.E028" in _with_replicas(settings, {"REPLICAS": ["replica"]}, routers=[])


def test_replicas_without_read_your_writes_are_flagged(settings):
    found = _with_replicas(settings, {"REPLICAS": ["replica"]}, middleware=False)
    assert "strata.W031" in found


# Databases behind a pooler in transaction mode (pgbouncer)

# These checks read DATABASES only; they never connect.
_quiet = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
_PG = {"ENGINE": "django.db.backends.postgresql", "HOST": "10.0.0.9", "NAME": "site"}


def _pooled(settings, databases, strata=None) -> list:
    from strata.replicas.checks import check_transaction_pooled

    settings.DATABASES = databases
    settings.STRATA = {**settings.STRATA, **(strata or {})}
    found = [*check_strata_setting(), *check_transaction_pooled()]
    return [e for e in found if e.id in ("strata.W032", "strata.E033")]


@_quiet
def test_a_pooled_database_with_server_side_cursors_on_is_flagged_with_the_fix(settings):
    found = _pooled(
        settings, {"default": {**_PG, "PORT": 5433}}, {"TRANSACTION_POOLED": ["default"]}
    )
    assert ids(found) == ["strata.W032"]
    assert "server-side cursors are on" in found[0].msg
    assert "DISABLE_SERVER_SIDE_CURSORS" in found[0].hint


@_quiet
def test_a_pooled_database_set_up_for_transaction_mode_passes(settings):
    safe = {**_PG, "PORT": 6432, "DISABLE_SERVER_SIDE_CURSORS": True, "OPTIONS": {}}
    assert _pooled(settings, {"default": safe}, {"TRANSACTION_POOLED": ["default"]}) == []
    # psycopg's client-side binding (Django's default) never prepares, whatever the threshold.
    safe["OPTIONS"] = {"prepare_threshold": 5}
    assert _pooled(settings, {"default": safe}, {"TRANSACTION_POOLED": ["default"]}) == []


@_quiet
@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"server_side_binding": True, "prepare_threshold": 5}, "prepares statements"),
        ({"assume_role": "reader"}, "SET ROLE"),
    ],
)
def test_prepared_statements_and_a_role_per_connection_are_session_state(settings, options, words):
    config = {**_PG, "PORT": 6432, "DISABLE_SERVER_SIDE_CURSORS": True, "OPTIONS": options}
    found = _pooled(settings, {"default": config}, {"TRANSACTION_POOLED": ["default"]})
    assert ids(found) == ["strata.W032"] and words in found[0].msg


@_quiet
def test_port_6432_without_disable_server_side_cursors_is_flagged_even_when_not_listed(settings):
    found = _pooled(settings, {"default": {**_PG, "PORT": "6432"}})
    assert ids(found) == ["strata.W032"] and "pgbouncer's default" in found[0].msg
    assert _pooled(settings, {"default": {**_PG, "PORT": 5432}}) == []


@_quiet
@pytest.mark.parametrize(
    "pooled", ["default", ["replica9"], ["sqlite"], [1]], ids=["str", "unknown", "sqlite", "int"]
)
def test_transaction_pooled_must_name_postgresql_aliases(settings, pooled):
    databases = {
        "default": {**_PG, "PORT": 6432, "DISABLE_SERVER_SIDE_CURSORS": True},
        "sqlite": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }
    assert ids(_pooled(settings, databases, {"TRANSACTION_POOLED": pooled})) == ["strata.E033"]


# Every ID: documented, and asserted by some test

_CHECK_ID = re.compile(r"strata\.[EW]\d{3}")


def _ids_in(paths) -> set[str]:
    return {found for path in paths for found in _CHECK_ID.findall(path.read_text())}


def _emitted() -> set[str]:
    """Every ID the code can emit: ``id="strata.…"`` in a check, and the declarations'."""
    sources = "\n".join(p.read_text() for p in (REPOSITORY / "strata").rglob("*.py"))
    written = set(re.findall(r'id="(strata\.[EW]\d{3})"', sources))
    declared = {block.check_id for block in SETTINGS if isinstance(block, Block)}
    declared |= {setting.check_id for _, setting in (p.values for p in _declarations())}
    return written | declared


def test_every_check_id_in_the_code_is_documented():
    assert _emitted() == set(CHECK_IDS)


def test_every_check_id_is_asserted_by_a_test():
    this = Path(__file__).resolve()
    tests = [p for p in (REPOSITORY / "tests").rglob("test_*.py") if p.resolve() != this]
    here = Path(__file__).read_text().split("# Every ID: documented")[0]
    asserted = _ids_in(tests) | set(_CHECK_ID.findall(here))
    assert _emitted() - asserted == set()
