"""What a page key holds, as it comes back from the tests' real cache server.

A page round-trips whole; a pass marker, or a value of any other shape (an entry written
by another version of Strata), is never served as a page: the request renders.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.http import HttpResponse
from django.test import RequestFactory

from strata.conf import strata_settings
from strata.middleware import StrataMiddleware
from strata.pages.cache import PageCache
from strata.pages.entries import PASS_MARKER, Page, PassMarker

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

PATH = "/entries/"


def shared_view(request):
    return HttpResponse(b"<p>rendered now</p>")


@pytest.fixture
def pages() -> PageCache:
    return PageCache(strata_settings())


def key_of(pages: PageCache, path: str = PATH) -> str:
    return pages.key_for(RequestFactory().get(path))


def test_a_page_round_trips_through_the_cache_server(pages):
    page = Page({"newsroom_article": "a1b2"}, 1e12, 200, [("Content-Type", "text/html")], b"<p/>")
    caches[pages.cache_alias].set(key_of(pages), page, 60)

    _, entry, _ = pages.fresh_hit(RequestFactory().get(PATH))

    assert type(entry) is Page
    assert entry == page


def test_a_pass_marker_comes_back_as_a_marker_and_is_never_a_fresh_hit(pages):
    caches[pages.cache_alias].set(key_of(pages), PASS_MARKER, 60)

    _, entry, versions = pages.fresh_hit(RequestFactory().get(PATH))

    assert isinstance(entry, PassMarker)
    assert not pages.is_fresh_hit(entry, versions)


def test_under_a_pass_marker_the_view_renders_and_its_page_replaces_the_marker(pages):
    caches[pages.cache_alias].set(key_of(pages), PASS_MARKER, 60)
    middleware = StrataMiddleware(shared_view)

    first = middleware(RequestFactory().get(PATH))
    second = middleware(RequestFactory().get(PATH))

    assert (first["X-Strata"], first.content) == ("page-miss", b"<p>rendered now</p>")
    assert second["X-Strata"] == "page-hit"


def test_an_entry_of_another_shape_is_rendered_over_never_served(pages):
    # A plain tuple laid out as a page (the shape before pages were typed).
    old = ({}, 1e12, 200, [("Content-Type", "text/html")], b"<p>old format</p>")
    caches[pages.cache_alias].set(key_of(pages), old, 60)
    middleware = StrataMiddleware(shared_view)

    answer = middleware(RequestFactory().get(PATH))

    assert (answer["X-Strata"], answer.content) == ("page-miss", b"<p>rendered now</p>")
