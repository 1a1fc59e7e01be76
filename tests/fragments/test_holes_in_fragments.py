"""A ``{% personal %}`` hole inside a ``{% cached %}`` block.

A block is shared by every reader of the page, so what it stores must suit them all: the
hole itself, never the visitor's markup that ``{% personal %}`` fills in place for a
request without cookies. And a page that gets the block from the cache has the hole as
much as the page that rendered it: it must say so (``Surrogate-Control`` asks Varnish to
fill it).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Engine
from django.test import RequestFactory

from strata.fragments import forget_remembered, reset_stats, stats
from strata.pages.holes import has_holes
from strata.querycache.monkey_patch import install
from strata.tags.recorder import recording
from strata.tags.versions import defer_stores, flush_deferred_stores

HELLO = "newsroom/_hello_box.html"  # the demo's: "Log in" for a visitor, else a greeting
BLOCK = (
    '{% load strata %}<header>{% cached %}<b>{% personal "'
    + HELLO
    + '" %}</b>{% endcached %}</header>'
)
OUTSIDE = '{% load strata %}<header>{% personal "' + HELLO + '" %}</header>'
# The inner block is never stored (timeout=0), but the outer one stores its markup.
NESTED = (
    '{% load strata %}{% cached %}<header>{% cached timeout=0 %}{% personal "' + HELLO + '" %}'
    "{% endcached %}</header>{% endcached %}"
)


def engine() -> Engine:
    return Engine(
        libraries={"strata": "strata.templatetags.strata"},
        loaders=[
            (
                "django.template.loaders.locmem.Loader",
                {"block.html": BLOCK, "outside.html": OUTSIDE, "nested.html": NESTED},
            )
        ],
    )


@pytest.fixture(autouse=True)
def fragment_cache_on(settings, clean_cache):
    install()
    settings.STRATA = {"FRAGMENT_CACHE": {"ENABLED": True, "TIMEOUT": 60}}
    reset_stats()
    forget_remembered()
    yield
    reset_stats()


def visitor():
    """A request without cookies: ``{% personal %}`` fills it in place."""
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    return request


def reader():
    """A request with a session cookie: ``{% personal %}`` punches a hole."""
    request = RequestFactory().get("/", HTTP_COOKIE="sessionid=abc")
    request.user = AnonymousUser()  # who it is does not matter: the page is shared
    return request


def page(request, name: str = "block.html") -> str:
    """Render a page as a request does: inside a recorder, fragments stored at the end."""
    defer_stores()
    try:
        with recording():
            return engine().get_template(name).render(Context({"request": request}))
    finally:
        flush_deferred_stores()


def test_a_reader_after_a_visitor_gets_the_hole_not_the_visitors_markup():
    page(visitor())
    request = reader()
    html = page(request)
    assert stats["hit"] == 1
    assert "<esi:include" in html and "Log in" not in html
    assert has_holes(request)


def test_a_page_served_a_cached_block_with_a_hole_is_marked_as_having_holes():
    page(reader())
    request = reader()
    html = page(request)
    assert stats["hit"] == 1 and "<esi:include" in html
    assert has_holes(request)


def test_a_visitor_gets_the_same_hole_from_a_cached_block():
    first = page(reader())
    request = visitor()
    assert page(request) == first
    assert has_holes(request)


def test_a_block_never_stored_inside_one_that_is_keeps_the_hole_too():
    page(visitor(), "nested.html")
    request = reader()
    html = page(request, "nested.html")
    assert "<esi:include" in html and "Log in" not in html
    assert has_holes(request)


def test_outside_a_block_a_visitors_hole_is_still_filled_in_place():
    request = visitor()
    html = page(request, "outside.html")
    assert "Log in" in html and "<esi:include" not in html
    assert not has_holes(request)


def test_with_the_fragment_cache_off_a_visitors_hole_is_filled_in_place(settings):
    settings.STRATA = {"FRAGMENT_CACHE": {"ENABLED": False}}
    request = visitor()
    html = page(request)
    assert "Log in" in html and not has_holes(request)
