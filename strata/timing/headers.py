"""What the timing of a request puts in its response: pure functions, no state.

``Server-Timing`` (W3C Server Timing) names each section with its duration in
milliseconds; browsers' developer tools draw it beside the network timings::

    Server-Timing: db;dur=12.30;desc="4 queries", cache;dur=0.81;desc="3 calls",
                   tpl;dur=5.12, app;dur=2.04, total;dur=20.27

It says how a page was built, so by default only responses that no shared cache stores
carry it (``Cache-Control`` ``private`` or ``no-store``): an accelerator would otherwise
keep the timings of one render and show them with every hit, to everyone.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping

from django.http import HttpResponseBase

from .aggregates import clean_sql
from .collector import CACHE, DB, TEMPLATE, RequestTiming

__all__ = [
    "BENCH_HEADER",
    "BENCH_SECRET_HEADER",
    "BENCH_MODES",
    "BENCH_SLOW_QUERIES",
    "server_timing",
    "is_personal",
    "wants_server_timing",
    "add_server_timing",
    "bench_mode",
    "add_bench_headers",
]

BENCH_HEADER = "HTTP_X_STRATA_BENCH"
BENCH_SECRET_HEADER = "HTTP_X_STRATA_BENCH_SECRET"
BENCH_MODES = ("warm", "cold")
BENCH_SLOW_QUERIES = 3
"""Statements listed in ``X-Strata-Slow-Queries``."""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def server_timing(timing: RequestTiming) -> str:
    """The ``Server-Timing`` value of a finished request."""
    spent = timing.spent
    queries = "1 query" if timing.calls[DB] == 1 else f"{timing.calls[DB]} queries"
    return (
        f'db;dur={spent[DB] * 1000:.2f};desc="{queries}", '
        f'cache;dur={spent[CACHE] * 1000:.2f};desc="{_plural(timing.calls[CACHE], "call")}", '
        f"tpl;dur={spent[TEMPLATE] * 1000:.2f}, "
        f"app;dur={timing.app * 1000:.2f}, "
        f"total;dur={timing.total * 1000:.2f}"
    )


def is_personal(response: HttpResponseBase) -> bool:
    """True when no shared cache may store ``response`` (RFC 9111 5.2.2.5, 5.2.2.7)."""
    cache_control = response.get("Cache-Control", "").lower()
    return "private" in cache_control or "no-store" in cache_control


def wants_server_timing(mode: str, response: HttpResponseBase) -> bool:
    """Whether ``response`` gets ``Server-Timing`` under ``STRATA['TIMING']['SERVER_TIMING']``."""
    if mode == "all":
        return True
    if mode == "personal":
        return is_personal(response)
    return False


def add_server_timing(response: HttpResponseBase, timing: RequestTiming) -> None:
    """Add the request's ``Server-Timing`` after any the view set itself."""
    value = server_timing(timing)
    existing = response.get("Server-Timing")
    response["Server-Timing"] = f"{existing}, {value}" if existing else value


def _as_bytes(value: str) -> bytes:
    try:
        return value.encode("latin-1")  # WSGI decodes header bytes as latin-1
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def bench_mode(meta: Mapping[str, str], secret: bytes) -> str | None:
    """``"warm"`` or ``"cold"`` for a bench request with the right secret, else ``None``.

    A wrong or missing secret, an empty configured secret or an unknown mode is not an
    error: the headers are ignored and the request is served as any other.
    """
    mode = meta.get(BENCH_HEADER)
    if mode is None or not secret:
        return None
    mode = mode.strip().lower()
    given = meta.get(BENCH_SECRET_HEADER)
    if mode not in BENCH_MODES or not given:
        return None
    if not hmac.compare_digest(_as_bytes(given), secret):
        return None
    return mode


def add_bench_headers(response: HttpResponseBase, timing: RequestTiming, view: str) -> None:
    """Mark a bench response personal and unstorable, with its queries and view.

    ``no-store`` as well as ``private``: nothing — browser, accelerator, CDN — may keep a
    response built with the caches bypassed.
    """
    if "Cache-Control" in response:
        del response["Cache-Control"]
    response["Cache-Control"] = "private, no-store"
    response["X-Strata-Queries"] = str(timing.calls[DB])
    slowest = [
        {"ms": round(seconds * 1000, 3), "sql": clean_sql(sql)}
        for seconds, sql in timing.slowest(BENCH_SLOW_QUERIES)
    ]
    response["X-Strata-Slow-Queries"] = json.dumps(
        slowest, ensure_ascii=True, separators=(",", ":")
    )
    response["X-Strata-Timing-View"] = view
