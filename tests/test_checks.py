"""System checks explain a misconfigured STRATA setting, with an ID and a hint."""

from __future__ import annotations

import pytest

from strata.checks import check_sessions_survive_the_cache, check_strata_setting


def ids(errors):
    return [error.id for error in errors]


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
    ],
)
def test_each_mistake_has_its_own_check(settings, value, expected):
    settings.STRATA = value
    errors = check_strata_setting()
    assert ids(errors) == expected
    assert all(error.hint for error in errors)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("on", ["strata.E013"]),
        ({"TIMEOUT": 0}, ["strata.E013"]),
        ({"MAX_ROWS": "many"}, ["strata.E013"]),
        ({"EXCLUDE_TABLES": "django_session"}, ["strata.E013"]),
        ({"TIMEOUTS": 5}, ["strata.E013"]),
    ],
)
def test_a_bad_query_cache_block_is_explained(settings, block, expected):
    settings.STRATA = {"QUERY_CACHE": block}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379",
        }
    }
    assert ids(check_strata_setting()) == expected


def test_the_query_cache_needs_the_cache_it_names(settings):
    settings.STRATA = {"QUERY_CACHE": {}, "CACHE": "versions"}
    errors = check_strata_setting()
    assert ids(errors) == ["strata.E010"] and "versions" in errors[0].msg


@pytest.mark.parametrize(("debug", "expected"), [(False, "strata.E011"), (True, "strata.W011")])
def test_a_per_process_cache_is_refused_in_production(settings, debug, expected):
    settings.DEBUG = debug
    settings.STRATA = {"QUERY_CACHE": {}}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert ids(check_strata_setting()) == [expected]


def test_a_dummy_cache_caches_nothing(settings):
    settings.STRATA = {"QUERY_CACHE": {}}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    assert ids(check_strata_setting()) == ["strata.W012"]


def test_redis_replicas_could_serve_lagging_versions(settings):
    settings.STRATA = {"QUERY_CACHE": {}}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": ["redis://primary:6379", "redis://replica:6379"],
        }
    }
    assert ids(check_strata_setting()) == ["strata.W014"]


def test_redis_replicas_in_one_location_string_are_seen_too(settings):
    settings.STRATA = {"QUERY_CACHE": {}}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://primary:6379;redis://replica:6379",
        }
    }
    errors = check_strata_setting()
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
    settings.STRATA = {"QUERY_CACHE": {}}
    settings.CACHES = {
        "default": {
            "BACKEND": "strata.cache.sentinel.SentinelRedisCache",
            "LOCATION": location,
            "OPTIONS": options,
        }
    }
    assert ids(check_strata_setting()) == expected


def test_a_switched_off_query_cache_needs_no_cache(settings):
    settings.STRATA = {"QUERY_CACHE": {"ENABLED": False}, "CACHE": "absent"}
    assert check_strata_setting() == []


# Whole pages


def _ids(settings_changes, settings) -> list[str]:
    from django.core.checks import run_checks

    for name, value in settings_changes.items():
        setattr(settings, name, value)
    return [message.id for message in run_checks() if message.id.startswith("strata.")]


def test_the_page_cache_needs_strata_middleware_first(settings):
    middleware = [m for m in settings.MIDDLEWARE if "StrataMiddleware" not in m]
    assert "strata.E021" in _ids(
        {"MIDDLEWARE": [*middleware, "strata.middleware.StrataMiddleware"]}, settings
    )


def test_djangos_own_page_cache_beside_strata_is_flagged(settings):
    middleware = [*settings.MIDDLEWARE, "django.middleware.cache.FetchFromCacheMiddleware"]
    assert "strata.W023" in _ids({"MIDDLEWARE": middleware}, settings)


@pytest.mark.parametrize(
    ("strata", "check_id"),
    [
        ({"PAGE_CACHE": []}, "strata.E016"),
        ({"PAGE_CACHE": {"TIMEOUT": 0}}, "strata.E016"),
        ({"PAGE_CACHE": {"STATUS_TIMEOUTS": {"404": 30}}}, "strata.E016"),
        ({"PAGE_CACHE": {"NOPE": 1}}, "strata.E016"),
        ({"FRAGMENT_CACHE": {"TIMEOUT": "long"}}, "strata.E017"),
        ({"ACCELERATORS": ["varnish:6081"]}, "strata.E018"),
        ({"ACCELERATORS": ["http://127.0.0.1:6081"], "PURGE_SECRET": ""}, "strata.W019"),
        ({"PURGE_DELAY": -1}, "strata.E020"),
    ],
)
def test_page_settings_are_checked(settings, strata, check_id):
    assert check_id in _ids({"STRATA": {**settings.STRATA, **strata}}, settings)


def test_the_demo_settings_pass_every_check(settings):
    assert _ids({}, settings) == []


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
    changes = {"STRATA": {**settings.STRATA, **strata}, "DATABASE_ROUTERS": routers}
    return _ids({**changes, "MIDDLEWARE": stack}, settings)


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
    settings.DATABASES = databases
    settings.STRATA = {**settings.STRATA, **(strata or {})}
    return [e for e in check_strata_setting() if e.id in ("strata.W032", "strata.E033")]


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
