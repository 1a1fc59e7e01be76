"""Strata's template tags: ``{% load strata %}``.

``{% personal "app/_hello_box.html" [name=value ...] %}``
    a personal hole: the template is rendered per user, outside the shared page.
``{% personal_csrf_token %}``
    ``{% csrf_token %}`` for a form on a shared page (a hole).
``{% cached [vary ...] [timeout=N] %}…{% endcached %}``
    a fragment cached with the tags recorded inside it (see ``strata.fragments``); a
    ``{% personal %}`` inside it stays a hole for every reader, and a page that gets the
    block from the cache is marked as having holes.
"""

from __future__ import annotations

import json

from django import template
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import get_script_prefix, get_urlconf
from django.utils.safestring import mark_safe

from ..edge.policy import is_anonymous
from ..fragments import rendering_to_store
from ..fragments.django_tags import CachedNode, do_cached
from ..pages.holes import (
    CSRF_TEMPLATE,
    fallback_markup,
    has_holes,
    hole_markup,
    hole_url,
    mark_holes,
)

register = template.Library()

_ESI_HOLE = "<!--esi <esi:include "
"""How :func:`hole_markup` starts: a block's markup with this in it has a hole."""


class HoleAwareCachedNode(CachedNode):
    """A ``{% cached %}`` block that tells the page about the holes inside it.

    ``{% personal %}`` marks the page it renders in as having holes (so that Varnish
    fills them by ESI); a block served from the cache renders no tag, so the page is
    marked here, from the markup, whether the block was rendered or served.
    """

    def render(self, context):
        html = super().render(context)
        request = context.get("request")
        if request is not None and not has_holes(request) and _ESI_HOLE in html:
            mark_holes(request)
        return html


@register.tag("cached")
def cached(parser, token) -> HoleAwareCachedNode:
    """``{% cached [vary ...] [timeout=N] %}…{% endcached %}`` (:func:`do_cached`), hole-aware."""
    node = do_cached(parser, token)
    return HoleAwareCachedNode(node.nodelist, node.vary, node.timeout, node.fragment)


_HOLE_URLS: dict[tuple, str] = {}
_HOLE_URLS_MAX = 1024
"""Signed hole URLs already made, at most this many (then the lot is dropped)."""


def _hole_url(template_name: str, arguments: dict | None = None) -> str:
    """:func:`hole_url`, signed once per payload and remembered.

    A hole's URL is the same on every render (it has no timestamp, so that two renders
    of a page are equal), yet signing it (JSON, zlib, an HMAC with a derived key) and
    reversing it cost more than the rest of the tag. The key is the exact JSON that gets
    signed, with what else the URL depends on: the secret key, the URLconf and the
    script prefix. Same payload, same signer: the same URL as :func:`hole_url` makes.
    """
    try:
        # Signing serialises {"t": …, "a": …} with these separators: equal keys, equal bytes.
        payload = json.dumps({"t": template_name, "a": arguments or {}}, separators=(",", ":"))
    except (TypeError, ValueError):
        return hole_url(template_name, arguments)  # raises the explanatory TypeError
    key = (payload, settings.SECRET_KEY, get_urlconf(), get_script_prefix())
    url = _HOLE_URLS.get(key)
    if url is None:
        url = hole_url(template_name, arguments)
        if len(_HOLE_URLS) >= _HOLE_URLS_MAX:
            _HOLE_URLS.clear()  # arguments from an unbounded set: keep memory bounded
        _HOLE_URLS[key] = url
    return url


@register.simple_tag(takes_context=True)
def personal(context, template_name: str, **arguments):
    """A hole filled with ``template_name`` rendered for the current user.

    A request without cookies has no user to be personal about: the template is rendered
    in place, and the page (a variant of its own in every cache) needs no hole at all.
    Not inside a ``{% cached %}`` block that is being stored, though: the block is shared
    by every reader, so it keeps the hole.
    """
    try:
        url = _hole_url(template_name, arguments)
    except TypeError as exc:
        raise template.TemplateSyntaxError(str(exc)) from exc
    request = context.get("request")
    if is_anonymous(request) and not rendering_to_store():
        return mark_safe(render_to_string(template_name, arguments, request=request))
    mark_holes(request)
    return mark_safe(hole_markup(url))


@register.simple_tag(takes_context=True)
def personal_csrf_token(context):
    """The CSRF token input of a form on a shared page, through a hole.

    Without cookies, the browser fetches the token itself (and gets its cookie with it);
    inside a ``{% cached %}`` block being stored, every reader gets the hole.
    """
    request = context.get("request")
    url = _hole_url(CSRF_TEMPLATE)
    if is_anonymous(request) and not rendering_to_store():
        return mark_safe(fallback_markup(url))
    mark_holes(request)
    return mark_safe(hole_markup(url))
