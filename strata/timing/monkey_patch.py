"""The hooks that feed the request collector: database, caches, templates.

Installed once per process (``StrataConfig.ready`` when ``STRATA['TIMING']`` is on; the
middleware calls :func:`install` again, which only adds the cache backends configured
since). Each hook reads one context variable and returns at once when no request is
being timed.

* **Database**: ``CursorWrapper._execute``/``_executemany``, where a statement goes to
  the database after every execute wrapper has run. Not an execute wrapper itself:
  ``connection.execute_wrappers`` is the project's own list (tests compare it, tools
  such as django-zen-queries push onto it), and a wrapper there would also time the
  wrappers. Strata's own bookkeeping statements (``strata.querycache.bookkeeping``) run
  below this and are not counted. Opening a connection, commits and rollbacks are
  database time too (not statements). Rows fetched after ``execute`` returns (SQLite
  steps through a result as it is fetched) count as the application.
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
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.utils.module_loading import import_string

from ..tags.redis_store import RedisVersionStore
from ..tags.versions import VersionStore
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


def _timed_statement(execute):
    """``CursorWrapper._execute``/``_executemany`` charged to the request's database time."""

    @wraps(execute)
    def timed(self, sql, params, *rest):
        timing = _active.get()
        if timing is None:
            return execute(self, sql, params, *rest)
        started = timing.enter(DB)
        try:
            return execute(self, sql, params, *rest)
        finally:
            timing.query(sql, timing.leave() - started)

    setattr(timed, _MARK, True)
    return timed


def _install_database() -> None:
    for name in ("_execute", "_executemany"):
        original = getattr(CursorWrapper, name)
        if not getattr(original, _MARK, False):
            setattr(CursorWrapper, name, _timed_statement(original))
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
