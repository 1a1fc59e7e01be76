"""Is a response the same for everyone? Pure functions of a request and its response.

A shared response may be stored by an accelerator and by the page cache; a personal one
must not be. The rule follows ``docs/design.md`` ("Shared or personal"): GET/HEAD, no
``Authorization``, the view never touched the session or the user, no ``Set-Cookie``, no
``private``/``no-store``/``no-cache``, ``Vary`` limited to ``Accept-Encoding``.

What the view touched is decided by what it did, not by guessing from the request: a
session cookie alone does not make a page personal (the hello box is a hole, the page is
the same for everyone), but reading ``request.user`` or the session does.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control
from django.utils.functional import empty

__all__ = [
    "personal_reason",
    "request_bypass_reason",
    "touched_reason",
    "apply_edge_cache_control",
    "mark_uncacheable",
    "view_name",
    "is_anonymous",
]

_CACHEABLE_STATUS = frozenset({200, 203, 204, 300, 301, 404, 410})
_PERSONAL_DIRECTIVES = ("private", "no-store", "no-cache")
# Vary on these request headers still gives one response per key: the page cache keys on
# the encoding, and Accept-Encoding alone is what accelerators normalise themselves.
_HARMLESS_VARY = frozenset({"accept-encoding"})


def view_name(request: HttpRequest) -> str:
    """The dotted name of the view that answered ``request`` (or its path)."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match._func_path
    return request.path


#: The cookie of django.contrib.messages' cookie storage (CookieStorage.cookie_name).
MESSAGES_COOKIE = "messages"


def is_anonymous(request: HttpRequest | None) -> bool:
    """True for a request without cookies or credentials: nobody in particular.

    Its session is empty and its user anonymous, so whatever a view reads of them is the
    same for every such request; caches keep these pages apart from the others.
    """
    return (
        request is not None
        and not request.META.get("HTTP_COOKIE")
        and "HTTP_AUTHORIZATION" not in request.META
    )


def request_bypass_reason(request: HttpRequest) -> str | None:
    """Why ``request`` may neither be answered from nor stored in a shared cache."""
    if request.method not in ("GET", "HEAD"):
        return f"method {request.method}"
    if "HTTP_AUTHORIZATION" in request.META:
        return "authorization header"
    if MESSAGES_COOKIE in request.COOKIES:
        # django.contrib.messages waiting to be shown to this person, once.
        return "messages cookie"
    return None


def touched_reason(request: HttpRequest) -> str | None:
    """What personal state the view read, in words (``session read in app.views.home``).

    For a request without cookies, reading the (empty) session or the (anonymous) user is
    not personal; only a CSRF token is, since it sets a cookie.
    """
    if is_anonymous(request):
        user = session = None
    else:
        user = request.__dict__.get("user")
        session = getattr(request, "session", None)
    # request.user is a lazy object until someone looks at it.
    if user is not None and getattr(user, "_wrapped", None) is not empty:
        return f"user read in {view_name(request)}"
    if session is not None and getattr(session, "accessed", False):
        return f"session read in {view_name(request)}"
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        return (
            f"CSRF token used in {view_name(request)} "
            "(put it in a hole: {% personal_csrf_token %})"
        )
    return None


def personal_reason(request: HttpRequest, response: HttpResponseBase) -> str | None:
    """Return why ``response`` must not be shared, or ``None`` when it may be."""
    reason = request_bypass_reason(request)
    if reason is not None:
        return reason
    reason = touched_reason(request)
    if reason is not None:
        return reason
    if response.cookies:
        return "response sets a cookie"
    if response.status_code not in _CACHEABLE_STATUS:
        return f"status {response.status_code}"
    cache_control = response.get("Cache-Control", "").lower()
    if getattr(response, "streaming", False) and not (
        "public" in cache_control or "s-maxage" in cache_control
    ):
        # A stream is shared only when its view says so (WhiteNoise's static files do):
        # nothing else of it can be inspected before it is sent.
        return "streaming response"
    for directive in _PERSONAL_DIRECTIVES:
        if directive in cache_control:
            return f"Cache-Control: {directive}"
    vary = {v.strip().lower() for v in response.get("Vary", "").split(",") if v.strip()}
    # Vary: Cookie on a request without cookies names the one variant every cache keeps
    # apart already (the page cache keys on "no cookies"; Varnish strips them).
    harmless = _HARMLESS_VARY | ({"cookie"} if is_anonymous(request) else set())
    if vary - harmless:
        return f"Vary: {', '.join(sorted(vary - harmless))}"
    return None


def mark_uncacheable(response: HttpResponseBase) -> None:
    """Keep ``response`` out of every shared cache (RFC 9111 5.2.2.7: ``private``)."""
    cache_control = response.get("Cache-Control", "")
    if "private" not in cache_control and "no-store" not in cache_control:
        if "public" in cache_control or "s-maxage" in cache_control:
            # A shared lifetime set by the view no longer applies.
            del response["Cache-Control"]
        patch_cache_control(response, private=True)


def apply_edge_cache_control(
    request: HttpRequest,
    response: HttpResponseBase,
    edge_ttl: int,
    status_ttls: Mapping[int, int] | None = None,
) -> str | None:
    """Mark ``response`` shared (``s-maxage``) or personal (``private``); return the reason.

    A view that set ``s-maxage`` or ``max-age`` itself keeps its own lifetime. A status
    in ``status_ttls`` (a 404, a redirect) lives no longer than it says: a flood of
    random URLs must not fill the accelerator with long-lived "not found" pages.
    """
    reason = personal_reason(request, response)
    if reason is not None:
        mark_uncacheable(response)
        return reason
    cache_control = response.get("Cache-Control", "")
    if "s-maxage" not in cache_control and "max-age" not in cache_control:
        # max-age=0 keeps browsers revalidating; s-maxage governs shared caches (RFC 9111 5.2.2.10).
        if status_ttls and response.status_code in status_ttls:
            edge_ttl = min(edge_ttl, status_ttls[response.status_code])
        patch_cache_control(response, public=True, max_age=0, s_maxage=edge_ttl)
    return None
