"""Strata's template tags: ``{% load strata %}``.

``{% personal "app/_hello_box.html" [name=value ...] %}``
    a personal hole: the template is rendered per user, outside the shared page.
``{% personal_csrf_token %}``
    ``{% csrf_token %}`` for a form on a shared page (a hole).
``{% cached [vary ...] [timeout=N] %}…{% endcached %}``
    a fragment cached with the tags recorded inside it (see ``strata.fragments``).
"""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from ..edge.policy import is_anonymous
from ..fragments.django_tags import do_cached
from ..pages.holes import CSRF_TEMPLATE, fallback_markup, hole_markup, hole_url, mark_holes

register = template.Library()
register.tag("cached", do_cached)


@register.simple_tag(takes_context=True)
def personal(context, template_name: str, **arguments):
    """A hole filled with ``template_name`` rendered for the current user.

    A request without cookies has no user to be personal about: the template is rendered
    in place, and the page (a variant of its own in every cache) needs no hole at all.
    """
    try:
        url = hole_url(template_name, arguments)
    except TypeError as exc:
        raise template.TemplateSyntaxError(str(exc)) from exc
    request = context.get("request")
    if is_anonymous(request):
        return mark_safe(render_to_string(template_name, arguments, request=request))
    mark_holes(request)
    return mark_safe(hole_markup(url))


@register.simple_tag(takes_context=True)
def personal_csrf_token(context):
    """The CSRF token input of a form on a shared page, through a hole.

    Without cookies, the browser fetches the token itself (and gets its cookie with it).
    """
    request = context.get("request")
    url = hole_url(CSRF_TEMPLATE)
    if is_anonymous(request):
        return mark_safe(fallback_markup(url))
    mark_holes(request)
    return mark_safe(hole_markup(url))
