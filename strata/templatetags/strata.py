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
from django.utils.safestring import mark_safe

from ..fragments.django_tags import do_cached
from ..pages.holes import CSRF_TEMPLATE, hole_markup, hole_url, mark_holes

register = template.Library()
register.tag("cached", do_cached)


@register.simple_tag(takes_context=True)
def personal(context, template_name: str, **arguments):
    """A hole filled with ``template_name`` rendered for the current user."""
    try:
        url = hole_url(template_name, arguments)
    except TypeError as exc:
        raise template.TemplateSyntaxError(str(exc)) from exc
    mark_holes(context.get("request"))
    return mark_safe(hole_markup(url))


@register.simple_tag(takes_context=True)
def personal_csrf_token(context):
    """The CSRF token input of a form on a shared page, through a hole."""
    mark_holes(context.get("request"))
    return mark_safe(hole_markup(hole_url(CSRF_TEMPLATE)))
