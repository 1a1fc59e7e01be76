"""DATABASE_URL and CACHE_URL become Django settings with no edits."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from strata import env


@pytest.mark.parametrize(
    ("url", "backend", "location"),
    [
        (
            "redis://127.0.0.1:6379/0",
            "django.core.cache.backends.redis.RedisCache",
            "redis://127.0.0.1:6379/0",
        ),
        (
            "memcached://a:11211,b:11211",
            "django.core.cache.backends.memcached.PyMemcacheCache",
            ["a:11211", "b:11211"],
        ),
        (
            "file:///var/cache/site",
            "django.core.cache.backends.filebased.FileBasedCache",
            "/var/cache/site",
        ),
        ("locmem://pages", "django.core.cache.backends.locmem.LocMemCache", "pages"),
    ],
)
def test_cache_urls_name_djangos_own_backends(url, backend, location):
    config = env.cache_from_url(url)
    assert config["BACKEND"] == backend
    assert config["LOCATION"] == location


def test_cache_url_options_become_timeout_prefix_and_options():
    config = env.cache_from_url("redis://h:1/0?timeout=60&key_prefix=site&db=2")
    assert config["TIMEOUT"] == 60
    assert config["KEY_PREFIX"] == "site"
    assert config["OPTIONS"] == {"db": 2, "socket_connect_timeout": 0.5, "socket_timeout": 0.5}


@pytest.mark.parametrize("url", ["mongodb://x", "file://relative/path"])
def test_a_bad_cache_url_is_a_clear_configuration_error(url):
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL"):
        env.cache_from_url(url, source="CACHE_URL")


def test_database_url_from_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@127.0.0.1:8432/site")
    config = env.database(default="sqlite:///x.sqlite3")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("127.0.0.1", 8432, "site")
    assert config["CONN_MAX_AGE"] == 60 and config["CONN_HEALTH_CHECKS"] is True


def test_database_default_when_unset(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = env.database(default="sqlite:////tmp/strata-x.sqlite3")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["CONN_MAX_AGE"] == 0


def test_a_bad_database_url_is_a_clear_configuration_error(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "nosuchdb://x")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env.database(default="sqlite:///x")


def test_pool_mode_transaction_turns_server_side_cursors_off_and_stays_out_of_libpq(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@127.0.0.1:6432/site?pool_mode=transaction")
    config = env.database(default="sqlite:///x")
    assert config["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert config["OPTIONS"] == {"connect_timeout": 2}  # nothing psycopg would refuse


def test_without_pool_mode_or_in_session_mode_server_side_cursors_stay_on(monkeypatch):
    for url in ("postgres://u@h:5432/site", "postgres://u@h:6432/site?pool_mode=session"):
        monkeypatch.setenv("DATABASE_URL", url)
        config = env.database(default="sqlite:///x")
        assert not config.get("DISABLE_SERVER_SIDE_CURSORS")
        assert "pool_mode" not in config["OPTIONS"]


def test_an_unknown_pool_mode_is_a_clear_configuration_error(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h:6432/site?pool_mode=statement")
    with pytest.raises(ImproperlyConfigured, match="pool_mode must be 'transaction' or 'session'"):
        env.database(default="sqlite:///x")


def _settings():
    """What a settings module holds before its last line, ``env.configure(globals())``."""
    return {
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}},
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        "ALLOWED_HOSTS": ["www.example.com"],
        "MIDDLEWARE": ["strata.middleware.StrataMiddleware", "x.Middleware"],
        "STRATA": {"PAGE_CACHE": {"ENABLED": True}, "EDGE_TTL": 60},
    }


def test_configure_without_the_stack_leaves_the_settings_as_they_are():
    settings = _settings()
    env.configure(settings, environ={})
    assert settings == _settings()


def test_configure_reads_everything_the_stack_exports():
    settings = _settings()
    env.configure(
        settings,
        environ={
            "DATABASE_URL": "postgres://app@127.0.0.1:8432/site",
            "CACHE_URL": "redis://127.0.0.1:8379/0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1, localhost",
            "STRATA_ACCELERATORS": "http://127.0.0.1:8080,http://127.0.0.1:8081",
            "STRATA_PURGE_SECRET": "s3cret",
            "STRATA_BENCH_SECRET": "b3nch",
            "STRATA_EDGE_TTL": "300",
            "STRATA_RUN_DIR": "/srv/run",
        },
    )
    assert settings["DATABASES"]["default"]["HOST"] == "127.0.0.1"
    assert settings["DATABASES"]["default"]["PORT"] == 8432
    assert settings["CACHES"]["default"]["LOCATION"] == "redis://127.0.0.1:8379/0"
    assert settings["ALLOWED_HOSTS"] == ["www.example.com", "127.0.0.1", "localhost"]
    assert settings["STRATA"] == {
        "PAGE_CACHE": {"ENABLED": True},
        "EDGE_TTL": 300,
        "ACCELERATORS": ["http://127.0.0.1:8080", "http://127.0.0.1:8081"],
        "PURGE_SECRET": "s3cret",
        "BENCH_SECRET": "b3nch",
    }
    assert settings["STATIC_ROOT"] == "/srv/run/static"


def test_an_empty_accelerator_list_means_purge_nothing():
    settings = _settings()
    settings["STRATA"]["ACCELERATORS"] = ["http://10.0.0.5:6081"]
    env.configure(settings, environ={"STRATA_ACCELERATORS": ""})
    assert settings["STRATA"]["ACCELERATORS"] == []


def test_the_settings_own_static_root_wins_over_the_run_directory():
    settings = {**_settings(), "STATIC_ROOT": "/var/www/static"}
    env.configure(settings, environ={"STRATA_RUN_DIR": "/srv/run"})
    assert settings["STATIC_ROOT"] == "/var/www/static"


def test_a_replica_brings_its_router_and_read_your_writes():
    settings = _settings()
    env.configure(settings, environ={"DATABASE_REPLICA_URL": "postgres://app@10.0.0.2:5432/s"})
    assert settings["DATABASES"]["replica1"]["TEST"] == {"MIRROR": "default"}
    assert settings["DATABASE_ROUTERS"] == ["strata.replicas.ReplicaRouter"]
    assert settings["MIDDLEWARE"][1] == "strata.replicas.ReadYourWritesMiddleware"
    assert settings["STRATA"]["REPLICAS"] == ["replica1"]


def test_a_malformed_edge_ttl_is_a_configuration_error():
    with pytest.raises(ImproperlyConfigured, match="STRATA_EDGE_TTL"):
        env.configure(_settings(), environ={"STRATA_EDGE_TTL": "5m"})


def test_settings_that_ignore_the_stack_get_a_warning(settings, monkeypatch):
    from strata.env_checks import check_stack_environment

    assert check_stack_environment() == []
    monkeypatch.setenv("STRATA_ACCELERATORS", "http://127.0.0.1:9")
    monkeypatch.setenv("CACHE_URL", "redis://127.0.0.1:9/0")
    [warning] = check_stack_environment()
    assert warning.id == "strata.W040"
    assert "CACHE_URL, STRATA_ACCELERATORS" in warning.msg
    settings.STRATA = {**settings.STRATA, "ACCELERATORS": ["http://127.0.0.1:9"]}
    settings.CACHES = {"default": env.cache_from_url("redis://127.0.0.1:9/0")}
    assert check_stack_environment() == []


def test_a_bench_secret_the_settings_ignore_gets_a_warning(settings, monkeypatch):
    from strata.env_checks import check_stack_environment

    monkeypatch.setenv("STRATA_BENCH_SECRET", "b3nch-secret-of-sixteen")
    [warning] = check_stack_environment()
    assert warning.id == "strata.W040" and "STRATA_BENCH_SECRET" in warning.msg
    settings.STRATA = {**settings.STRATA, "BENCH_SECRET": "b3nch-secret-of-sixteen"}
    assert check_stack_environment() == []
