"""The answer when the database is down: a clear 503 page, never a traceback.

``StrataMiddleware`` turns a database connection error raised by a view into this
response. The page cache and the accelerator keep serving what they hold (a valid page
past its lifetime is served while the database is down: stale-if-error, RFC 5861);
only what must be built from the database gets this page, until the database answers
again. Django reconnects on the next request, so no restart is needed.

A site can override the template ``strata/unavailable.html``; it is rendered with no
context and no request, so it must not need the database.
"""

from __future__ import annotations

import logging
import time

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string

__all__ = ["is_database_unavailable", "database_unavailable", "RETRY_AFTER"]

log = logging.getLogger("strata")

#: Seconds a client is asked to wait before trying again.
RETRY_AFTER = 5

_FALLBACK = (
    "<!DOCTYPE html><title>Back in a moment</title><h1>Back in a moment</h1>"
    "<p>The site's database is not answering. Please try again in a few seconds.</p>"
)
_WARN_EVERY = 10.0
_last_warning = [-_WARN_EVERY]


def is_database_unavailable(exception: BaseException) -> bool:
    """True for the errors Django raises when it cannot reach the database."""
    return isinstance(exception, OperationalError | InterfaceError)


def database_unavailable(request, exception: BaseException) -> HttpResponse:
    """A 503 page that no cache stores, with ``Retry-After``; logs a warning."""
    now = time.monotonic()
    if now - _last_warning[0] >= _WARN_EVERY:
        _last_warning[0] = now
        log.warning(
            "strata: the database is unavailable (%s); answering 503 to %s %s",
            str(exception).strip().splitlines()[0] if str(exception).strip() else exception,
            request.method,
            request.path,
        )
    body: str
    try:
        body = render_to_string("strata/unavailable.html")
    except TemplateDoesNotExist:
        body = _FALLBACK
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER)
    response["Cache-Control"] = "no-store"
    return response
