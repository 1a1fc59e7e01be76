"""Settings for the newsroom demo site, read from the environment so they need no edits.

``strata up`` exports ``DATABASE_URL`` (PostgreSQL) and ``CACHE_URL`` (Redis or a file
cache) to each app server; without them the site runs on SQLite and a file cache that every
process on the machine shares.

=========================  ============================================================
variable                   meaning (default)
=========================  ============================================================
``DATABASE_URL``           the database (``sqlite:///<demo>/db.sqlite3``)
``CACHE_URL``              the default cache (``file://<demo>/.cache``)
``DJANGO_SECRET_KEY``      the secret key (an insecure development key)
``DJANGO_DEBUG``           ``1`` or ``true`` turns debugging on (off)
``DJANGO_ALLOWED_HOSTS``   comma-separated host names (``127.0.0.1,localhost,testserver``)
``STRATA_EDGE_TTL``        seconds a shared page may live in the accelerator (``10``)
``STRATA_QUERY_CACHE``     ``0`` turns Strata's ORM query cache off (on)
``STRATA_PAGE_CACHE``      ``0`` turns Strata's page cache off (on)
``STRATA_FRAGMENT_CACHE``  ``0`` turns ``{% cached %}`` blocks off (on)
``STRATA_ACCELERATORS``    comma-separated Varnish URLs to purge after writes (none)
``STRATA_PURGE_SECRET``    the secret those Varnish nodes expect (none)
=========================  ============================================================
"""

import os
import warnings
from pathlib import Path

from strata import env

# The demo/ directory.
BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-newsroom-demo-key-do-not-use-in-production"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "").strip().lower() in ("1", "true")
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if host.strip()
]

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
# A streaming replica (strata up --hosts runs one): reads go there, writes and the
# reads of whoever just wrote go to the primary, and caches never store what a lagging
# replica returned (docs/replicas.md).
replica_url = os.environ.get("DATABASE_REPLICA_URL", "")
if replica_url:
    DATABASES["replica1"] = {
        **env.database(default="", var="DATABASE_REPLICA_URL"),
        "TEST": {"MIRROR": "default"},
    }
    DATABASE_ROUTERS = ["strata.replicas.ReplicaRouter"]
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
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves straight from the apps' static/ directories: no collectstatic needed.
WHITENOISE_USE_FINDERS = True
# STATIC_ROOT exists only after a collectstatic, which the demo does not need.
warnings.filterwarnings("ignore", message=r"No directory at: .*staticfiles")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STRATA = {
    "EDGE_TTL": int(os.environ.get("STRATA_EDGE_TTL", "10")),
    # The ORM query cache: on unless STRATA_QUERY_CACHE=0 (benchmarks compare both).
    "QUERY_CACHE": {"ENABLED": os.environ.get("STRATA_QUERY_CACHE", "1") != "0"},
    # Whole pages in the cache: on unless STRATA_PAGE_CACHE=0.
    "PAGE_CACHE": {"ENABLED": os.environ.get("STRATA_PAGE_CACHE", "1") != "0"},
    "FRAGMENT_CACHE": {"ENABLED": os.environ.get("STRATA_FRAGMENT_CACHE", "1") != "0"},
    # The Varnish nodes to purge after each write, and the secret they expect
    # (strata up exports both).
    "ACCELERATORS": [
        url for url in os.environ.get("STRATA_ACCELERATORS", "").split(",") if url.strip()
    ],
    "PURGE_SECRET": os.environ.get("STRATA_PURGE_SECRET", ""),
}
if replica_url:
    STRATA["REPLICAS"] = ["replica1"]
    STRATA["READ_YOUR_WRITES"] = 30
    MIDDLEWARE.insert(1, "strata.replicas.ReadYourWritesMiddleware")

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
