"""Is a response the same for everyone? Pure functions of a request and its response.

A shared response may be stored by an accelerator; a personal one must not be. The rule
follows ``DESIGN.md`` ("Shared or personal"): GET/HEAD, no ``Authorization``, no session
cookie, no ``Set-Cookie``, no ``private``/``no-store``/``no-cache``, no ``Vary: *``.
Issue "Whole pages" refines this with what the view actually touched.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control

__all__ = ["personal_reason", "apply_edge_cache_control"]

_CACHEABLE_STATUS = frozenset({200, 203, 204, 300, 301, 404, 410})
_PERSONAL_DIRECTIVES = ("private", "no-store", "no-cache")


def personal_reason(request: HttpRequest, response: HttpResponseBase) -> str | None:
    """Return why ``response`` must not be shared, or ``None`` when it may be."""
    if request.method not in ("GET", "HEAD"):
        return f"method {request.method}"
    if "HTTP_AUTHORIZATION" in request.META:
        return "authorization header"
    if settings.SESSION_COOKIE_NAME in request.COOKIES:
        return "session cookie"
    if response.cookies:
        return "response sets a cookie"
    if response.status_code not in _CACHEABLE_STATUS:
        return f"status {response.status_code}"
    cache_control = response.get("Cache-Control", "").lower()
    for directive in _PERSONAL_DIRECTIVES:
        if directive in cache_control:
            return f"Cache-Control: {directive}"
    if response.get("Vary", "").strip() == "*":
        return "Vary: *"
    return None


def apply_edge_cache_control(
    request: HttpRequest, response: HttpResponseBase, edge_ttl: int
) -> str | None:
    """Mark ``response`` shared (``s-maxage``) or personal (``private``); return the reason.

    A view that set ``s-maxage`` or ``max-age`` itself keeps its own lifetime.
    """
    reason = personal_reason(request, response)
    if reason is not None:
        if "private" not in response.get("Cache-Control", "") and "no-store" not in response.get(
            "Cache-Control", ""
        ):
            patch_cache_control(response, private=True)
        return reason
    cache_control = response.get("Cache-Control", "")
    if "s-maxage" not in cache_control and "max-age" not in cache_control:
        # max-age=0 keeps browsers revalidating; s-maxage governs shared caches (RFC 9111 5.2.2.10).
        patch_cache_control(response, public=True, max_age=0, s_maxage=edge_ttl)
    return None
