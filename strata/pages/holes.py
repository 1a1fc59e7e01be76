"""Personal holes: the bits of a shared page that differ per user.

A shared page stays the same for everyone; the "Hello, Ann" box or a form's CSRF token
is punched out and filled per request:

* through Varnish, by an ESI include (``<!--esi <esi:include src=…/> -->``), which
  Strata's VCL processes for pages marked ``Surrogate-Control: content="ESI/1.0"``;
* elsewhere (a CDN without ESI, the page cache answering directly), by a small script
  that fetches the same URL; it sits in ``<esi:remove>``, which ESI processors drop.

So one rendering of the page serves both paths and the page cache needs no variant.
A hole's URL names its template and arguments, signed with ``SECRET_KEY``: the endpoint
renders only what a page asked for, and its answer is personal (``private, no-store``),
never stored in a shared cache.
"""

from __future__ import annotations

import json
from functools import cache

from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.html import escape

__all__ = [
    "CSRF_TEMPLATE",
    "HOLE_URL_NAME",
    "hole_url",
    "hole_markup",
    "hole_view",
    "hole_prefix",
    "mark_holes",
    "has_holes",
    "fallback_markup",
    "ESI_HEADER",
]

HOLE_URL_NAME = "strata-hole"
CSRF_TEMPLATE = "strata/csrf_token.html"
ESI_HEADER = "HTTP_X_STRATA_ESI"
"""Set by Strata's VCL on ESI sub-requests (a client sending it only gets the fallback)."""
_SALT = "strata.hole"
_ATTRIBUTE = "_strata_holes"

# Replaces the placeholder before it with the hole's HTML, fetched with the user's cookies.
_SCRIPT = (
    "<script>(function(h){fetch(h.dataset.src,{credentials:'same-origin'})"
    ".then(function(r){return r.ok?r.text():''})"
    ".then(function(t){h.outerHTML=t})})(document.currentScript.previousElementSibling)"
    "</script>"
)


def _signer() -> signing.Signer:
    return signing.Signer(salt=_SALT)


def _check_arguments(arguments: dict) -> None:
    try:
        json.dumps(arguments)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "arguments of a personal hole must be plain values (strings, numbers, booleans), "
            f"not {arguments!r}: pass article.pk, not article"
        ) from exc


def hole_url(template_name: str, arguments: dict | None = None) -> str:
    """The URL that renders ``template_name`` for the current user."""
    arguments = arguments or {}
    _check_arguments(arguments)
    # No timestamp: the same hole must give the same URL, or no two pages would be equal.
    token = _signer().sign_object({"t": template_name, "a": arguments}, compress=True)
    return reverse(HOLE_URL_NAME, args=[token])


def fallback_markup(url: str) -> str:
    """The placeholder and script that fill a hole from the browser."""
    return f'<strata-hole data-src="{escape(url)}"></strata-hole>{_SCRIPT}'


def hole_markup(url: str) -> str:
    """An ESI include for accelerators that speak ESI, the script for everyone else."""
    src = escape(url)
    return f'<!--esi <esi:include src="{src}"/> --><esi:remove>{fallback_markup(url)}</esi:remove>'


def mark_holes(request: HttpRequest | None) -> None:
    """Remember that the page being built for ``request`` has holes."""
    if request is not None:
        setattr(request, _ATTRIBUTE, True)


def has_holes(request: HttpRequest) -> bool:
    """True when the page built for ``request`` used ``{% personal %}``."""
    return getattr(request, _ATTRIBUTE, False)


@cache
def hole_prefix() -> str | None:
    """The path under which holes are served (``/-/hole/``), or None if not routed."""
    try:
        return reverse(HOLE_URL_NAME, args=["x"])[:-2]
    except NoReverseMatch:
        return None


def hole_view(request: HttpRequest, token: str) -> HttpResponse:
    """Render a hole for the user making the request; never shared."""
    try:
        payload = _signer().unsign_object(token)
        template_name, arguments = payload["t"], dict(payload["a"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        response: HttpResponse = HttpResponseBadRequest(
            b"Unknown hole.\n", content_type="text/plain"
        )
        patch_cache_control(response, no_store=True)
        return response
    if (
        template_name == CSRF_TEMPLATE
        and request.META.get(ESI_HEADER)
        and "CSRF_COOKIE" not in request.META
    ):
        # A cookie set in an ESI fragment never reaches the browser: let the browser
        # fetch the token itself, which sets the cookie with it.
        html = fallback_markup(request.get_full_path())
    else:
        html = render_to_string(template_name, arguments, request=request)
    response = HttpResponse(html)
    patch_cache_control(response, private=True, no_store=True)
    patch_vary_headers(response, ["Cookie"])
    return response
