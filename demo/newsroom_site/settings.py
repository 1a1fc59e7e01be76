"""Settings for the newsroom demo site, read from the environment so they need no edits.

``strata up`` exports where the stack runs (``DATABASE_URL``, ``CACHE_URL``, the Varnish
nodes to purge and their secret, ...) to each app server; ``env.configure(globals())`` at
the end reads all of it (``docs/your-site.md``). Without them the site runs on SQLite and a
file cache that every process on the machine shares.

=========================  ============================================================
the demo's own variables   meaning (default)
=========================  ============================================================
``DJANGO_SECRET_KEY``      the secret key (an insecure development key)
``DJANGO_DEBUG``           ``1`` or ``true`` turns debugging on (off)
``STRATA_QUERY_CACHE``     ``0`` turns Strata's ORM query cache off (on)
``STRATA_PAGE_CACHE``      ``0`` turns Strata's page cache off (on)
``STRATA_FRAGMENT_CACHE``  ``0`` turns ``{% cached %}`` blocks off (on)
=========================  ============================================================
"""

import os
from pathlib import Path

from strata import env

# The demo/ directory.
BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-newsroom-demo-key-do-not-use-in-production"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "").strip().lower() in ("1", "true")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "strata",
    "newsroom",
]

MIDDLEWARE = [
    # First: answers health probes before anything else runs and marks every response
    # shared or personal for the accelerator.
    "strata.middleware.StrataMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "newsroom_site.urls"
WSGI_APPLICATION = "newsroom_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.database(default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# The default cache is a directory shared by every process on this machine; strata up
# and production point CACHE_URL at Redis or Memcached.
CACHES = {"default": env.cache(default=f"file://{BASE_DIR / '.cache'}")}
# Sessions live in the cache server, written through to the database.
SESSION_ENGINE = "strata.sessions"  # cached_db sessions that survive a cache outage

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# WhiteNoise serves straight from the apps' static/ directories, with or without a
# collectstatic; under strata up, STATIC_ROOT is the run directory's static/ (env.configure).
WHITENOISE_USE_FINDERS = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STRATA = {
    # Writes purge Varnish at once: the lifetime only bounds what a lost purge costs.
    "EDGE_TTL": 300,
    # The ORM query cache: on unless STRATA_QUERY_CACHE=0 (benchmarks compare both).
    "QUERY_CACHE": {"ENABLED": os.environ.get("STRATA_QUERY_CACHE", "1") != "0"},
    # Whole pages in the cache: on unless STRATA_PAGE_CACHE=0.
    "PAGE_CACHE": {"ENABLED": os.environ.get("STRATA_PAGE_CACHE", "1") != "0"},
    "FRAGMENT_CACHE": {"ENABLED": os.environ.get("STRATA_FRAGMENT_CACHE", "1") != "0"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "django": {"handlers": ["console"], "level": "WARNING"},
        "strata": {"handlers": ["console"], "level": "INFO"},
    },
}

# Last: where the stack runs, from what strata up (or strata manage, strata env) exports;
# a streaming replica (strata up --hosts) adds its alias, router and read-your-writes.
env.configure(globals())
