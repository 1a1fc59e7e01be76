"""Django's ``cached_db`` sessions that keep working while the cache server is down.

``SESSION_ENGINE = "strata.sessions"``. Sessions are read from the cache and, on a
miss, from the database (then cached), exactly as ``django.contrib.sessions.backends.
cached_db`` does. Django's engine already survives a cache that fails on ``get`` and
``save``, but not when it repopulates the cache after a miss, checks whether a key
exists, or deletes a session: with the cache server down, every logged-in request then
fails with a server error. Here those fail over to the database, with a warning.

A session deleted (logout) while the cache server could not be reached is deleted from
the cache later, the next time this process reaches it, so that a cache server that
comes back with its old contents (a network partition, not a restart) does not log the
user back in.
"""

from __future__ import annotations

import logging
import threading
import time

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.db import SessionStore as DBStore

__all__ = ["SessionStore"]

log = logging.getLogger("strata")

_WARN_EVERY = 10.0
_MAX_PENDING = 10_000


class _Pending:
    """Cache keys of sessions deleted while the cache failed, to delete when it answers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: set[str] = set()
        self.warned = -_WARN_EVERY

    def add(self, key: str) -> None:
        with self.lock:
            if len(self.keys) < _MAX_PENDING:
                self.keys.add(key)

    def retry(self, cache) -> None:
        if not self.keys:
            return
        with self.lock:
            keys, self.keys = self.keys, set()
        try:
            cache.delete_many(list(keys))
        except Exception:
            for key in keys:
                self.add(key)
        else:
            log.warning(
                "strata: deleted %d session(s) logged out while the cache was down", len(keys)
            )

    def warn(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self.warned >= _WARN_EVERY:
            self.warned = now
            log.warning("strata: session cache unavailable (%s: %s); using the database", what, exc)


_pending = _Pending()


class SessionStore(cached_db.SessionStore):
    """``cached_db`` sessions that fall back to the database when the cache fails."""

    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except Exception as exc:
            _pending.warn("read", exc)
            data = None
        else:
            _pending.retry(self._cache)
        if data is not None:
            return data
        session = self._get_session_from_db()
        if not session:
            return {}
        data = self.decode(session.session_data)
        try:
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=session.expire_date))
        except Exception as exc:
            _pending.warn("write", exc)
        return data

    def exists(self, session_key):
        if session_key:
            try:
                if (self.cache_key_prefix + session_key) in self._cache:
                    return True
            except Exception as exc:
                _pending.warn("read", exc)
        return DBStore.exists(self, session_key)

    def delete(self, session_key=None):
        DBStore.delete(self, session_key)
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        key = self.cache_key_prefix + session_key
        try:
            self._cache.delete(key)
        except Exception as exc:
            _pending.warn("delete", exc)
            _pending.add(key)
