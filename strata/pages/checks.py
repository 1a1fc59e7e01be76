"""System checks of the page cache: Strata's middleware first, holes routed, no rival cache."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from ..conf import strata_settings
from .holes import hole_prefix

STRATA_MIDDLEWARE = "strata.middleware.StrataMiddleware"
DEBUG_TOOLBAR_MIDDLEWARE = "debug_toolbar.middleware.DebugToolbarMiddleware"
"""May come before Strata's: it shows page hits then, and Strata's panel keeps its pages
out of every shared cache (docs/debug-toolbar.md)."""


@register(Tags.compatibility)
def check_middleware_order(app_configs=None, **kwargs) -> list[CheckMessage]:
    """With the page cache on, ``StrataMiddleware`` comes first and Django's cache not at all."""
    if not strata_settings().page_cache.enabled:
        return []
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    messages: list[CheckMessage] = []
    django_cache = [m for m in middleware if m.startswith("django.middleware.cache.")]
    if django_cache:
        messages.append(
            Warning(
                f"{', '.join(django_cache)} run beside Strata's page cache.",
                hint="Remove them: Strata's page cache already stores whole pages, with exact "
                "invalidation; before StrataMiddleware, Django's stores nothing (Strata "
                "answers max-age=0 for browsers), after it, pages go stale until they expire.",
                id="strata.W023",
            )
        )
    if middleware[:1] != [STRATA_MIDDLEWARE] and middleware[:2] != [
        DEBUG_TOOLBAR_MIDDLEWARE,
        STRATA_MIDDLEWARE,
    ]:
        messages.append(
            Error(
                "The page cache is on, but strata.middleware.StrataMiddleware is not the "
                "first entry of MIDDLEWARE.",
                hint="Put it first (only django-debug-toolbar's may come before it): a "
                "page-cache hit must return before any other middleware runs, and it must "
                "see what every other middleware did.",
                id="strata.E021",
            )
        )
    return messages


@register(Tags.urls)
def check_holes_routed(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Personal holes need ``strata.urls`` in the URLconf."""
    if not strata_settings().page_cache.enabled:
        return []
    hole_prefix.cache_clear()
    if hole_prefix() is None:
        return [
            Warning(
                "Personal holes ({% personal %}, {% personal_csrf_token %}) have no URL.",
                hint='Add path("-/", include("strata.urls")) to your ROOT_URLCONF.',
                id="strata.W022",
            )
        ]
    return []
