"""Read the stack's addresses from the environment, so that settings need no edits.

`strata up` (and `strata env`, `strata manage`, and the units `strata config` writes)
export where everything runs to each process of a site. One line at the end of the
settings module hands all of it to Django::

    from strata import env
    env.configure(globals())

:func:`configure` reads these variables; each one that is set replaces (or, for the
allowed hosts, extends) what the settings say, and each one that is absent leaves the
settings as they are, so the settings' own values are the defaults:

==========================  ===============================================================
variable                    what it sets
==========================  ===============================================================
``DATABASE_URL``            ``DATABASES["default"]`` (:func:`database`)
``DATABASE_REPLICA_URL``    ``DATABASES["replica1"]``, the replica router, read-your-writes
``CACHE_URL``               ``CACHES["default"]`` (:func:`cache`)
``DJANGO_ALLOWED_HOSTS``    added to ``ALLOWED_HOSTS`` (comma-separated)
``STRATA_ACCELERATORS``     ``STRATA["ACCELERATORS"]``: the Varnish nodes to purge
``STRATA_PURGE_SECRET``     ``STRATA["PURGE_SECRET"]``
``STRATA_BENCH_SECRET``     ``STRATA["BENCH_SECRET"]``: what bench mode's requests must send
``STRATA_EDGE_TTL``         ``STRATA["EDGE_TTL"]``
``STRATA_RUN_DIR``          ``STATIC_ROOT`` (``<run dir>/static``) when the settings set none
==========================  ===============================================================

The system check ``strata.W040`` (:mod:`strata.env_checks`) warns when one of them is set but the settings ended
up ignoring it (a settings module that never calls :func:`configure`, or overrides it).
(``docs/design.md``, "One environment for every process of a site".)

The two readers below also work on their own::

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
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

__all__ = ["STACK_VARIABLES", "configure", "database", "cache", "cache_from_url", "split_list"]

STACK_VARIABLES = (
    "DATABASE_URL",
    "DATABASE_REPLICA_URL",
    "CACHE_URL",
    "DJANGO_ALLOWED_HOSTS",
    "STRATA_ACCELERATORS",
    "STRATA_PURGE_SECRET",
    "STRATA_BENCH_SECRET",
    "STRATA_EDGE_TTL",
    "STRATA_RUN_DIR",
)
"""What the stack exports to a site's processes, and :func:`configure` reads."""

REPLICA_ALIAS = "replica1"
READ_YOUR_WRITES = 30
"""Seconds a client that wrote reads from the primary, when a replica is configured here."""

_CACHE_BACKENDS = {
    "redis": "django.core.cache.backends.redis.RedisCache",
    "rediss": "django.core.cache.backends.redis.RedisCache",
    "memcached": "django.core.cache.backends.memcached.PyMemcacheCache",
    "file": "django.core.cache.backends.filebased.FileBasedCache",
    "locmem": "django.core.cache.backends.locmem.LocMemCache",
    "dummy": "django.core.cache.backends.dummy.DummyCache",
}


def configure(settings: MutableMapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
    """Point a settings module (its ``globals()``) at the stack described by ``environ``.

    Call it last in the settings module, after ``DATABASES``, ``CACHES``,
    ``ALLOWED_HOSTS``, ``MIDDLEWARE`` and ``STRATA`` are written: the variables that are
    set win, the settings are the defaults (see the module docstring).
    """
    environ = os.environ if environ is None else environ

    def given(name: str) -> str:
        return environ.get(name, "").strip()

    if given("DATABASE_URL"):
        databases = settings.setdefault("DATABASES", {})
        databases["default"] = database(default="", var="DATABASE_URL", environ=environ)
    if given("DATABASE_REPLICA_URL"):
        _configure_replica(settings, environ)
    if given("CACHE_URL"):
        settings.setdefault("CACHES", {})["default"] = cache(default="", environ=environ)
    if given("DJANGO_ALLOWED_HOSTS"):
        hosts = list(settings.get("ALLOWED_HOSTS", []))
        hosts += [h for h in split_list(given("DJANGO_ALLOWED_HOSTS")) if h not in hosts]
        settings["ALLOWED_HOSTS"] = hosts
    strata = dict(settings.get("STRATA") or {})
    if "STRATA_ACCELERATORS" in environ:  # set and empty: purge nothing (no accelerator)
        strata["ACCELERATORS"] = split_list(environ["STRATA_ACCELERATORS"])
    for variable, key in (
        ("STRATA_PURGE_SECRET", "PURGE_SECRET"),
        ("STRATA_BENCH_SECRET", "BENCH_SECRET"),
    ):
        if given(variable):
            strata[key] = given(variable)
    if given("STRATA_EDGE_TTL"):
        try:
            strata["EDGE_TTL"] = int(given("STRATA_EDGE_TTL"))
        except ValueError:
            raise ImproperlyConfigured(
                f"STRATA_EDGE_TTL={given('STRATA_EDGE_TTL')!r} is not a whole number of seconds"
            ) from None
    if strata or "STRATA" in settings:
        settings["STRATA"] = strata
    if given("STRATA_RUN_DIR") and not settings.get("STATIC_ROOT"):
        settings["STATIC_ROOT"] = os.path.join(given("STRATA_RUN_DIR"), "static")


def _configure_replica(settings: MutableMapping[str, Any], environ: Mapping[str, str]) -> None:
    """A streaming replica: reads go there, a client that wrote reads from the primary,
    and nothing a lagging replica returned is cached under newer versions."""
    settings.setdefault("DATABASES", {})[REPLICA_ALIAS] = {
        **database(default="", var="DATABASE_REPLICA_URL", environ=environ),
        "TEST": {"MIRROR": "default"},
    }
    routers = list(settings.get("DATABASE_ROUTERS", []))
    if "strata.replicas.ReplicaRouter" not in routers:
        settings["DATABASE_ROUTERS"] = [*routers, "strata.replicas.ReplicaRouter"]
    strata = settings.setdefault("STRATA", {})
    strata.setdefault("REPLICAS", [REPLICA_ALIAS])
    strata.setdefault("READ_YOUR_WRITES", READ_YOUR_WRITES)
    middleware = list(settings.get("MIDDLEWARE", []))
    if "strata.replicas.ReadYourWritesMiddleware" not in middleware:
        first = "strata.middleware.StrataMiddleware"
        at = middleware.index(first) + 1 if first in middleware else 0
        middleware.insert(at, "strata.replicas.ReadYourWritesMiddleware")
        settings["MIDDLEWARE"] = middleware


def split_list(value: str) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``: a comma-separated variable as a list."""
    return [item.strip() for item in value.split(",") if item.strip()]


def database(
    default: str,
    var: str = "DATABASE_URL",
    conn_max_age: int = 60,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return a ``DATABASES`` entry from the URL in ``var`` (or ``default``).

    Persistent connections (``conn_max_age``) are on with health checks, because an app
    server that opens a PostgreSQL connection per request spends most of a fast request
    doing so.
    """
    url = (os.environ if environ is None else environ).get(var) or default
    try:
        parsed = dj_database_url.parse(
            url, conn_max_age=conn_max_age, conn_health_checks=conn_max_age > 0
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"{var}={url!r} is not a database URL: {exc}") from exc
    config: dict[str, Any] = dict(parsed)
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


def cache(
    default: str, var: str = "CACHE_URL", environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return a ``CACHES`` entry from the URL in ``var`` (or ``default``)."""
    url = (os.environ if environ is None else environ).get(var) or default
    return cache_from_url(url, source=var)


def cache_from_url(url: str, source: str = "cache URL") -> dict[str, Any]:
    """Translate a cache URL (see the module docstring) into a ``CACHES`` entry."""
    parts = urlsplit(url)
    backend = _CACHE_BACKENDS.get(parts.scheme)
    if backend is None:
        known = ", ".join(sorted(_CACHE_BACKENDS))
        raise ImproperlyConfigured(
            f"{source}={url!r}: unknown cache scheme {parts.scheme!r} (known: {known})"
        )
    options: dict[str, Any] = dict(parse_qsl(parts.query))
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
