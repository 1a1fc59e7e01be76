"""Settings for Django's own test suite (its ``tests/runtests.py``), as run by django_suite.

Django's ``tests/test_sqlite.py`` plus what Strata needs, read from the environment that
:mod:`tests.suites.django_suite` sets: ``STRATA_SUITE_DATABASE_URL`` (``sqlite://`` for
two in-memory SQLite databases, or a PostgreSQL URL whose server holds both aliases),
``STRATA_SUITE_CACHE_URL`` (the Redis behind Django's own ``RedisCache``). ``runtests.py``
replaces ``INSTALLED_APPS``: whether ``strata`` is installed is decided by which copy of
``runtests.py`` runs, not here.
"""

import os

import dj_database_url
import django

_database_url = os.environ.get("STRATA_SUITE_DATABASE_URL", "sqlite://")
if _database_url.startswith(("postgres://", "postgresql://")):
    _default = dj_database_url.parse(_database_url)
    DATABASES = {
        "default": _default,
        "other": {**_default, "NAME": f"{_default['NAME']}_other"},
    }
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3"},
        "other": {"ENGINE": "django.db.backends.sqlite3"},
    }

if "STRATA_SUITE_CACHE_URL" in os.environ:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["STRATA_SUITE_CACHE_URL"],
        }
    }

STRATA = {"QUERY_CACHE": {"ENABLED": True}}

TEST_RUNNER = "tests.suites.django_recording.RecordingRunner"

SECRET_KEY = "django_tests_secret_key"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if django.VERSION < (6, 0):
    DEFAULT_AUTO_FIELD = "django.db.models.AutoField"  # 6.0 made BigAutoField the default

USE_TZ = False
