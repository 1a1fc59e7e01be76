"""Read the stack's addresses from the environment, so that settings need no edits.

`strata up` exports ``DATABASE_URL`` and ``CACHE_URL`` to every app server it starts.
A project's settings hand them to Django in two lines::

    from strata import env
    DATABASES = {"default": env.database(default="sqlite:///" + str(BASE_DIR / "db.sqlite3"))}
    CACHES = {"default": env.cache(default="locmem://")}

Behind pgbouncer in transaction mode, say so in the URL, and server-side cursors are off
(``docs/pgbouncer.md``)::

    DATABASE_URL=postgres://app@10.0.0.9:6432/site?pool_mode=transaction

Cache URLs name one of Django's own backends:

=============================  =====================================================
``redis://host:port/db``       ``django.core.cache.backends.redis.RedisCache``
``memcached://host:port``      ``django.core.cache.backends.memcached.PyMemcacheCache``
``file:///abs/path``           ``django.core.cache.backends.filebased.FileBasedCache``
``locmem://[name]``            ``django.core.cache.backends.locmem.LocMemCache``
``dummy://``                   ``django.core.cache.backends.dummy.DummyCache``
=============================  =====================================================

Several memcached servers are separated by commas: ``memcached://a:11211,b:11211``.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

__all__ = ["database", "cache", "cache_from_url"]

_CACHE_BACKENDS = {
    "redis": "django.core.cache.backends.redis.RedisCache",
    "rediss": "django.core.cache.backends.redis.RedisCache",
    "memcached": "django.core.cache.backends.memcached.PyMemcacheCache",
    "file": "django.core.cache.backends.filebased.FileBasedCache",
    "locmem": "django.core.cache.backends.locmem.LocMemCache",
    "dummy": "django.core.cache.backends.dummy.DummyCache",
}


def database(default: str, var: str = "DATABASE_URL", conn_max_age: int = 60) -> dict[str, Any]:
    """Return a ``DATABASES`` entry from the URL in ``var`` (or ``default``).

    Persistent connections (``conn_max_age``) are on with health checks, because an app
    server that opens a PostgreSQL connection per request spends most of a fast request
    doing so.
    """
    url = os.environ.get(var) or default
    try:
        config = dj_database_url.parse(
            url, conn_max_age=conn_max_age, conn_health_checks=conn_max_age > 0
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"{var}={url!r} is not a database URL: {exc}") from exc
    if "postgresql" in config["ENGINE"]:
        # A database host that does not answer must fail a request, not hang it.
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
        _pool_mode(config, var, url)
    if config["ENGINE"].endswith("sqlite3"):
        # SQLite connections are cheap; keeping them open across threads gains nothing.
        config["CONN_MAX_AGE"] = 0
        config["CONN_HEALTH_CHECKS"] = False
        # Take the write lock when a transaction begins: concurrent writers then wait
        # for each other instead of failing with "database is locked", and Strata can
        # read the rows a write touches before it changes them.
        config.setdefault("OPTIONS", {}).setdefault("transaction_mode", "IMMEDIATE")
    return config


def _pool_mode(config: dict[str, Any], var: str, url: str) -> None:
    """``?pool_mode=transaction``: the URL names a pooler (pgbouncer) in transaction mode.

    A server connection is then the client's for one transaction only: a server-side
    cursor (``QuerySet.iterator()``) would be fetched from on another server connection,
    where it does not exist. The option is Strata's, not libpq's, so it never reaches
    psycopg. ``session`` (pgbouncer's session mode) changes nothing.
    """
    mode = config["OPTIONS"].pop("pool_mode", None)
    if mode is None or mode == "session":
        return
    if mode != "transaction":
        raise ImproperlyConfigured(
            f"{var}={url!r}: pool_mode must be 'transaction' or 'session', not {mode!r}"
        )
    config["DISABLE_SERVER_SIDE_CURSORS"] = True


def cache(default: str, var: str = "CACHE_URL") -> dict[str, Any]:
    """Return a ``CACHES`` entry from the URL in ``var`` (or ``default``)."""
    return cache_from_url(os.environ.get(var) or default, source=var)


def cache_from_url(url: str, source: str = "cache URL") -> dict[str, Any]:
    """Translate a cache URL (see the module docstring) into a ``CACHES`` entry."""
    parts = urlsplit(url)
    backend = _CACHE_BACKENDS.get(parts.scheme)
    if backend is None:
        known = ", ".join(sorted(_CACHE_BACKENDS))
        raise ImproperlyConfigured(
            f"{source}={url!r}: unknown cache scheme {parts.scheme!r} (known: {known})"
        )
    options = dict(parse_qsl(parts.query))
    config: dict[str, Any] = {"BACKEND": backend}
    if parts.scheme in ("redis", "rediss"):
        config["LOCATION"] = f"{parts.scheme}://{parts.netloc}{parts.path}"
    elif parts.scheme == "memcached":
        config["LOCATION"] = parts.netloc.split(",")
    elif parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ImproperlyConfigured(f"{source}={url!r}: a file cache needs an absolute path")
        config["LOCATION"] = parts.path
    elif parts.scheme == "locmem":
        config["LOCATION"] = parts.netloc or parts.path.strip("/")
    if "timeout" in options:
        config["TIMEOUT"] = int(options.pop("timeout"))
    if "key_prefix" in options:
        config["KEY_PREFIX"] = options.pop("key_prefix")
    # A cache server that hangs must cost a fraction of a second, not a request.
    if parts.scheme in ("redis", "rediss"):
        options.setdefault("socket_connect_timeout", 0.5)
        options.setdefault("socket_timeout", 0.5)
    elif parts.scheme == "memcached":
        options.setdefault("connect_timeout", 0.5)
        options.setdefault("timeout", 0.5)
    elif parts.scheme == "file":
        # Django's default of 300 entries culls a third of the cache every few writes.
        options.setdefault("MAX_ENTRIES", 20000)
    options = {key: _number(value) for key, value in options.items()}
    if options:
        config["OPTIONS"] = options
    return config


def _number(value):
    """URL query values are strings; timeouts and sizes must reach the client as numbers."""
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value
