"""The fragment cache: ``{% cached %}`` blocks stored with the tags they were built from.

The mechanism is :mod:`strata.fragments.cache`; the template tags are
:mod:`strata.fragments.django_tags` (Django) and :mod:`strata.fragments.jinja2`
(``FragmentCacheExtension``). Turned on by ``STRATA['FRAGMENT_CACHE']``.
"""

from .cache import (
    FRAGMENT_PREFIX,
    Fragment,
    forget_remembered,
    fragment_key,
    render_cached,
    rendering_to_store,
    reset_stats,
    source_digest,
    stats,
    vary_token,
)

__all__ = [
    "FRAGMENT_PREFIX",
    "Fragment",
    "fragment_key",
    "vary_token",
    "source_digest",
    "render_cached",
    "stats",
    "reset_stats",
    "forget_remembered",
    "rendering_to_store",
]
