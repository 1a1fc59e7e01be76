"""The newsroom's template tags and filters: ``{% load newsroom %}``."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.dates import MONTHS_3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from ..models import fixed_url as _fixed_url

register = template.Library()


@register.simple_tag
def fixed_url(name: str) -> str:
    """``{% url name %}`` for a view without arguments (the home page, the login page).

    Such a URL is the same on every page, yet ``{% url %}`` reverses it on every render:
    the header's two links cost more than the rest of the header.
    """
    return _fixed_url(name)


@register.filter(expects_localtime=True)
def time_element(value: datetime | None) -> SafeString:
    """``<time datetime="…">7 Dec 2026, 09:05</time>`` for a date and time.

    The same markup as ``<time datetime="{{ value|date:'c' }}">{{ value|date:"j M Y, H:i"
    }}</time>``, in the current time zone and language (``M`` is Django's month
    abbreviation, translated), but converted to local time once and formatted directly:
    the ``date`` filter interprets its format string on every call, and the 40 dates of
    a listing cost more than a millisecond that way.
    """
    if value is None or value == "":
        return mark_safe('<time datetime=""></time>')
    month = escape(MONTHS_3[value.month].title())
    return mark_safe(
        f'<time datetime="{value.isoformat()}">{value.day} {month} {value.year:04d}, '
        f"{value.hour:02d}:{value.minute:02d}</time>"
    )
