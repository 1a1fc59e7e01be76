"""The hooks that feed the request collector: database, caches, templates.

Installed once per process (``StrataConfig.ready`` when ``STRATA['TIMING']`` is on; the
middleware calls :func:`install` again, which only adds the cache backends configured
since). Each hook reads one context variable and returns at once when no request is
being timed.

* **Database**: a Django *execute wrapper* (the public API for this) on every
  connection, added when the connection opens (``connection_created``). It goes first in
  ``execute_wrappers``: ``connection.execute_wrapper()`` blocks append and pop at the end
  of that list, so a block opened before the connection was made still pops its own.
  This is below ``CursorWrapper.execute``, which :mod:`strata.querycache.monkey_patch`
  wraps, so the two compose in either order and the query cache's bookkeeping is not
  counted as database time. Opening a connection, commits and rollbacks are database
  time too (not statements). Rows fetched after ``execute`` returns (SQLite steps
  through a result as it is fetched) count as the application.
* **Caches**: the public methods of every backend class named in ``CACHES``, and
  Strata's direct Redis calls (``RedisVersionStore.get_with``/``_store_now``) and
  ``VersionStore.bump``, wrapped on their classes (the module that defines them is
  not edited).
* **Templates**: ``django.template.base.Template.render`` (``{% include %}`` renders
  through it: nested, counted once), the Django and Jinja2 backends' ``Template.render``
  (so context processors are template time).
"""

from __future__ import annotations

import logging
import threading
from functools import wraps

from django.conf import settings
from django.core.signals import request_finished
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.utils.module_loading import import_string

from .aggregates import flush_if_due
from .collector import CACHE, DB, TEMPLATE, _active

__all__ = ["install", "is_installed", "CACHE_METHODS"]

log = logging.getLogger("strata.timing")

CACHE_METHODS = (
    "get",
    "set",
    "add",
    "delete",
    "get_many",
    "set_many",
    "delete_many",
    "incr",
    "decr",
    "touch",
    "has_key",
    "get_or_set",
    "clear",
)
"""The methods of a Django cache backend that count as cache calls."""

_MARK = "__strata_timed__"
_lock = threading.Lock()
_installed = False
_backends: set[type] = set()


def is_installed() -> bool:
    """True once the database and template hooks are in place."""
    return _installed


def _timed(kind: int, func, count: bool = True):
    """``func`` charged to section ``kind`` of the current request."""

    @wraps(func)
    def timed(*args, **kwargs):
        timing = _active.get()
        if timing is None or timing.top == kind:  # not timed, or one call seen twice
            return func(*args, **kwargs)
        timing.enter(kind, count)
        try:
            return func(*args, **kwargs)
        finally:
            timing.leave()

    setattr(timed, _MARK, True)
    return timed


def _wrap(cls: type, name: str, kind: int, count: bool = True) -> None:
    func = getattr(cls, name, None)
    if func is None or getattr(func, _MARK, False):
        return  # absent, or already timed (here or on a base class)
    setattr(cls, name, _timed(kind, func, count))


# -- database ---------------------------------------------------------------------------


def _execute_hook(execute, sql, params, many, context):
    timing = _active.get()
    if timing is None:
        return execute(sql, params, many, context)
    started = timing.enter(DB)
    try:
        return execute(sql, params, many, context)
    finally:
        timing.query(sql, timing.leave() - started)


def _add_execute_hook(connection, **kwargs) -> None:
    wrappers = connection.execute_wrappers
    if _execute_hook not in wrappers:
        wrappers.insert(0, _execute_hook)


def _install_database() -> None:
    connection_created.connect(_add_execute_hook, dispatch_uid="strata-timing-db")
    for connection in connections.all(initialized_only=True):
        _add_execute_hook(connection)
    for name in ("connect", "commit", "rollback"):
        _wrap(BaseDatabaseWrapper, name, DB, count=False)


# -- caches -----------------------------------------------------------------------------


def _install_caches() -> None:
    for alias, config in getattr(settings, "CACHES", {}).items():
        path = config.get("BACKEND", "")
        try:
            backend = import_string(path)
        except ImportError as exc:
            log.warning("strata: cache %r (%s) is not timed: %s", alias, path, exc)
            continue
        if backend in _backends:
            continue
        for name in CACHE_METHODS:
            _wrap(backend, name, CACHE)
        _backends.add(backend)


def _install_version_store() -> None:
    from ..tags.versions import RedisVersionStore, VersionStore

    _wrap(RedisVersionStore, "get_with", CACHE)
    _wrap(RedisVersionStore, "_store_now", CACHE)
    _wrap(VersionStore, "bump", CACHE)


# -- templates --------------------------------------------------------------------------


def _install_templates() -> None:
    from django.template import base
    from django.template.backends import django as django_backend

    _wrap(base.Template, "render", TEMPLATE)
    _wrap(django_backend.Template, "render", TEMPLATE)
    try:
        from django.template.backends import jinja2 as jinja2_backend
    except ImportError:  # Jinja2 is not installed: nothing renders through it
        return
    _wrap(jinja2_backend.Template, "render", TEMPLATE)


# -- installation -----------------------------------------------------------------------


def _flush_aggregates(**kwargs) -> None:
    flush_if_due()


def install() -> None:
    """Put the hooks in place (once), and time the cache backends configured since."""
    global _installed
    with _lock:
        if not _installed:
            _install_database()
            _install_templates()
            _install_version_store()
            # After the response has gone: the figures are written off the request's clock.
            request_finished.connect(_flush_aggregates, dispatch_uid="strata-timing-flush")
            _installed = True
        _install_caches()
