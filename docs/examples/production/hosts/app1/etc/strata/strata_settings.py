"""Production settings of newsroom: newsroom_site.settings plus where everything runs.

Rendered by `strata config` from inventory.toml; edit the inventory and render again
rather than this file. It is the same on every app host, installed as
/etc/strata/strata_settings.py; the app servers' units load it with
DJANGO_SETTINGS_MODULE=strata_settings. Secrets come from the environment
(/etc/strata/secrets.env), never from a file that is reviewed or committed.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from newsroom_site.settings import *  # noqa: F403 (the site's settings first)


def _secret(name):
    """A secret from the environment, or a clear error naming it."""
    value = os.environ.get(name, "")
    if not value:
        raise ImproperlyConfigured(f"{name} is not set (the app servers read secrets.env)")
    return value


DEBUG = False
SECRET_KEY = _secret("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = [
    "news.example.com",
    "www.news.example.com",
    # Prometheus scrapes each app server at its own address (docs/monitoring.md); the
    # accelerators answer only the names above.
    "10.0.3.1",
    "10.0.3.2",
    "10.0.3.3",
    "10.0.3.4",
]
# Prometheus's host may read /-/metrics (and /-/timing/), as the site's own addresses may.
INTERNAL_IPS = [*globals().get("INTERNAL_IPS", ()), "10.0.6.1"]
# HAProxy terminates TLS and sets X-Forwarded-Proto itself, replacing a client's own.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = [
    "https://news.example.com",
    "https://www.news.example.com",
]

# The shared cache: pages, fragments, query results and tag versions.
# On the Redis primary that the Sentinels name, never on a replica (a lagging one would
# serve old tag versions); reads and writes follow a failover, and everything cached
# before it becomes a miss (docs/sentinel.md).
CACHES = {
    "default": {
        "BACKEND": "strata.cache.sentinel.SentinelRedisCache",
        "LOCATION": [
            "sentinel://10.0.4.1:26379",
            "sentinel://10.0.4.2:26379",
            "sentinel://10.0.1.1:26379",
        ],
        "OPTIONS": {
            "service_name": "strata",
            # The servers' requirepass (the Sentinels themselves ask for none).
            "password": _secret("STRATA_REDIS_PASSWORD"),
        },
    },
}

# PostgreSQL through pgbouncer in transaction mode: no server-side cursors,
# no session state.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "10.0.5.1",
        "PORT": 6432,
        "NAME": "newsroom",
        "USER": "newsroom",
        "PASSWORD": _secret("DATABASE_PASSWORD"),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "DISABLE_SERVER_SIDE_CURSORS": True,
        "OPTIONS": {"connect_timeout": 2},
    },
    "replica1": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "10.0.5.1",
        "PORT": 6432,
        "NAME": "newsroom_replica1",
        "USER": "newsroom",
        "PASSWORD": _secret("DATABASE_PASSWORD"),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "DISABLE_SERVER_SIDE_CURSORS": True,
        "OPTIONS": {"connect_timeout": 2},
        "TEST": {"MIRROR": "default"},
    },
}
# No router is named ([database] router in the inventory): every query goes to the
# primary until one is.

STRATA = {
    **globals().get("STRATA", {}),
    "HEALTH_PATH": "/-/health",
    "EDGE_TTL": 300,
    "CACHE": "default",
    # Every accelerator node: each write purges its tags on all of them.
    "ACCELERATORS": [
        "http://10.0.2.1:6091",
        "http://10.0.2.2:6091",
        "http://10.0.2.3:6091",
    ],
    "PURGE_SECRET": _secret("STRATA_PURGE_SECRET"),
    # The accelerators check bench requests against the purge secret's file too.
    "BENCH_SECRET": _secret("STRATA_PURGE_SECRET"),
}
