"""Page keys come from the validated host, the path, the normalised query and the encoding."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from strata.conf import default
from strata.pages.keys import NotCacheable, normalized_query, page_key, strip_ignored_parameters

IGNORED = tuple(default("IGNORED_PARAMETERS", "PAGE_CACHE"))
rf = RequestFactory()


def key(path: str, **extra) -> str:
    return page_key(rf.get(path, **extra), IGNORED, 512)


def test_parameter_order_does_not_make_another_page():
    assert key("/tags/x/?b=2&a=1") == key("/tags/x/?a=1&b=2")


def test_tracking_parameters_are_dropped():
    assert key("/?utm_source=news&utm_medium=mail&fbclid=abc&gclid=1") == key("/")


def test_repeated_parameters_keep_their_order():
    assert normalized_query("tag=b&tag=a", IGNORED, 512) == "tag=b&tag=a"
    assert key("/?tag=a&tag=b") != key("/?tag=b&tag=a")


def test_other_parameters_make_other_pages():
    assert key("/tags/x/?page=2") != key("/tags/x/")


def test_a_long_query_string_is_not_cached():
    with pytest.raises(NotCacheable, match="query string longer"):
        page_key(rf.get("/?q=" + "x" * 600), IGNORED, 512)


def test_an_unknown_host_is_not_cached(settings):
    settings.ALLOWED_HOSTS = ["example.com"]
    with pytest.raises(NotCacheable, match="host not allowed"):
        page_key(rf.get("/", HTTP_HOST="evil.test"), IGNORED, 512)


def test_hosts_and_schemes_are_separate_pages(settings):
    settings.ALLOWED_HOSTS = ["a.test", "b.test"]
    assert key("/", HTTP_HOST="a.test") != key("/", HTTP_HOST="b.test")
    assert key("/", HTTP_HOST="a.test") != key("/", HTTP_HOST="a.test", secure=True)


def test_gzip_and_identity_are_separate_pages_when_django_compresses():
    assert key("/", HTTP_ACCEPT_ENCODING="gzip, br") == key("/", HTTP_ACCEPT_ENCODING="gzip")
    assert key("/", HTTP_ACCEPT_ENCODING="gzip") != key("/")


def test_without_compression_by_django_the_encoding_does_not_split_pages():
    gzip = page_key(rf.get("/", HTTP_ACCEPT_ENCODING="gzip"), IGNORED, 512, False)
    assert gzip == page_key(rf.get("/"), IGNORED, 512, False)


def test_other_headers_never_reach_the_key():
    assert key("/", HTTP_X_FORWARDED_HOST="evil.test") == key("/")
    assert key("/", HTTP_COOKIE="a=b") == key("/", HTTP_COOKIE="sessionid=someone-else")


def test_requests_without_cookies_get_their_own_pages():
    # Their personal parts are filled in for nobody; pages for the others carry holes.
    assert key("/") != key("/", HTTP_COOKIE="sessionid=x")


def test_the_request_loses_only_the_ignored_parameters_in_their_order():
    request = RequestFactory().get("/x/?b=2&utm_source=mail&a=1&fbclid=z")

    assert strip_ignored_parameters(request, ("utm_*", "fbclid")) is True

    assert request.META["QUERY_STRING"] == "b=2&a=1"
    assert list(request.GET.items()) == [("b", "2"), ("a", "1")]
    assert request.get_full_path() == "/x/?b=2&a=1"


def test_a_request_without_ignored_parameters_is_left_alone():
    request = RequestFactory().get("/x/?b=2&a=%20")

    assert strip_ignored_parameters(request, ("utm_*",)) is False
    assert request.META["QUERY_STRING"] == "b=2&a=%20"
