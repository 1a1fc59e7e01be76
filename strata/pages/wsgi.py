"""Answer page-cache hits below Django's request handling.

A hit needs no middleware, no signals, no ``HttpResponse``: only the key, one multi-get,
and the stored bytes. Wrapping the project's WSGI application answers hits before
Django's handler runs (about half the time of a hit through ``StrataMiddleware``); every
other request goes to Django as before, with what was looked up handed on so the cache is
not read twice::

    # mysite/wsgi.py
    from django.core.wsgi import get_wsgi_application
    from strata.pages.wsgi import PageCacheApplication

    application = PageCacheApplication(get_wsgi_application())

The key is made by the same function from Django's own request object, so both paths
agree; it is remembered per process for the request's own values that the key and the
bypass rules read (host headers, scheme, path, query string, whether there are cookies and
which encoding is accepted), so that a repeated request builds no ``WSGIRequest``. A
request with an ``Authorization`` header or a cookie header naming the messages cookie is
never remembered: the full rules run for it. ``request_started``/``request_finished`` are
not sent for the hits answered here: nothing runs for them that would need it (no
database, nothing to store). Each hit is counted in :mod:`strata.metrics`
(``strata_requests_total{outcome="page-hit"}``, its time from here to the response)
unless ``STRATA['METRICS']['ENABLED']`` is off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from http import HTTPStatus
from time import perf_counter
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIRequest

from ..conf import strata_settings
from ..edge.outcomes import Outcome
from ..edge.policy import MESSAGES_COOKIE
from ..metrics.registry import Tally, tally
from ..tags.versions import CacheUnavailable
from ..timing.aggregates import known_view
from .cache import PageCache

__all__ = ["PageCacheApplication", "LOOKUP_KEY"]

LOOKUP_KEY = "strata.page_lookup"
"""The environ key under which a lookup that was not a fresh hit is handed to Django."""

# A plain str: WSGI servers may refuse a str subclass (wsgiref asserts ``type(v) is str``).
_HIT_HEADER = ("X-Strata", Outcome.PAGE_HIT.value)
# Every value of the environ that Django's request and Strata's page key and bypass rules
# read (get_host, is_secure, the path, the query string). The proxy's TLS header is added
# per process (``SECURE_PROXY_SSL_HEADER``).
_KEYED = (
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.url_scheme",
    "SCRIPT_URL",
    "REDIRECT_URL",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
)
_KEYS_REMEMBERED = 10_000
_NOT_CACHEABLE = ""


class PageCacheApplication:
    """A WSGI application that answers fresh page-cache hits, and passes the rest on."""

    def __init__(self, application: WSGIApplication) -> None:
        self.application = application
        self._pid: int | None = None
        self._pages: PageCache | None = None
        self._server_header = ""
        self._keyed: tuple[str, ...] = _KEYED
        self._keys: dict[tuple, str] = {}  # the request's keyed values -> page key or ""
        self._metrics: Tally | None = None

    def _page_cache(self) -> PageCache | None:
        pid = os.getpid()
        if self._pid != pid:  # settings are read in each app-server worker, after fork
            conf = strata_settings()
            self._pages = PageCache(conf) if conf.page_cache.enabled else None
            self._metrics = tally if conf.metrics.enabled else None
            self._server_header = f"{conf.server_name} pid={pid}"
            self._keys = {}
            proxy_header = getattr(django_settings, "SECURE_PROXY_SSL_HEADER", None)
            self._keyed = _KEYED + ((proxy_header[0],) if proxy_header else ())
            self._pid = pid
        return self._pages

    def _lookup(self, pages: PageCache, environ: WSGIEnvironment):
        """What :meth:`PageCache.fresh_hit` finds for this request, the key remembered."""
        cookies = environ.get("HTTP_COOKIE", "")
        if "HTTP_AUTHORIZATION" in environ or MESSAGES_COOKIE in cookies:
            return pages.fresh_hit(WSGIRequest(environ))  # the full rules, every time
        values = tuple(environ.get(name) for name in self._keyed)
        memo = (
            values,
            bool(cookies),
            "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "").lower(),
        )
        key = self._keys.get(memo)
        if key is None:
            found = pages.fresh_hit(WSGIRequest(environ))
            if len(self._keys) >= _KEYS_REMEMBERED:
                self._keys.clear()
            self._keys[memo] = _NOT_CACHEABLE if found is None else found[0]
            return found
        if not key:  # _NOT_CACHEABLE
            return None
        return pages.look_up_key(key)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        pages = self._page_cache()
        metrics = self._metrics
        started = perf_counter() if metrics is not None else 0.0
        if (
            pages is None
            or environ.get("REQUEST_METHOD") not in ("GET", "HEAD")
            # strata bench's warm and cold tiers: StrataMiddleware checks their secret.
            or "HTTP_X_STRATA_BENCH" in environ
        ):
            return self.application(environ, start_response)
        try:
            found = self._lookup(pages, environ)
        except CacheUnavailable:
            found = None
        if found is None:
            return self.application(environ, start_response)
        _, entry, versions = found
        if not pages.is_fresh_hit(entry, versions):
            environ[LOOKUP_KEY] = found
            return self.application(environ, start_response)
        _, _, status, headers, content = entry
        headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
        headers += [
            ("Content-Length", str(len(content))),
            _HIT_HEADER,
            ("X-Strata-Server", self._server_header),
        ]
        start_response(f"{status} {_phrase(status)}", headers)
        if metrics is not None:
            metrics.page_hit(known_view(environ.get("PATH_INFO", "/")), perf_counter() - started)
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else content]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
