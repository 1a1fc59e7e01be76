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
