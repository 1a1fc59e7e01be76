"""``{% personal %}`` signs a hole's URL once per payload: the same URL, the same signature."""

from __future__ import annotations

import pytest
from django.template import Context, Engine, TemplateSyntaxError
from django.test import RequestFactory

from strata.pages.holes import CSRF_TEMPLATE, hole_url
from strata.templatetags import strata as tags

HELLO = "newsroom/_hello_box.html"


@pytest.fixture(autouse=True)
def no_remembered_urls():
    tags._HOLE_URLS.clear()
    yield
    tags._HOLE_URLS.clear()


def test_a_remembered_hole_url_is_the_url_hole_url_signs():
    for name, arguments in [(HELLO, {}), (HELLO, {"n": 1}), (CSRF_TEMPLATE, None)]:
        assert tags._hole_url(name, arguments) == hole_url(name, arguments)
        assert tags._hole_url(name, arguments) == hole_url(name, arguments)  # remembered


def test_arguments_that_sign_differently_get_different_urls():
    urls = {tags._hole_url(HELLO, {"n": value}) for value in (1, 1.0, True, "1")}
    assert len(urls) == 4
    assert tags._hole_url(HELLO, {"n": True}) == hole_url(HELLO, {"n": True})


def test_a_new_secret_key_signs_anew(settings):
    before = tags._hole_url(HELLO, {})
    settings.SECRET_KEY = "another-secret-key-for-this-test-only-0123456789"
    after = tags._hole_url(HELLO, {})
    assert after != before and after == hole_url(HELLO, {})


def test_the_remembered_urls_are_bounded(monkeypatch):
    monkeypatch.setattr(tags, "_HOLE_URLS_MAX", 3)
    for n in range(10):
        assert tags._hole_url(HELLO, {"n": n}) == hole_url(HELLO, {"n": n})
        assert len(tags._HOLE_URLS) <= 3


def test_an_argument_that_is_not_a_plain_value_is_still_a_template_error():
    engine = Engine(libraries={"strata": "strata.templatetags.strata"})
    page = engine.from_string('{% load strata %}{% personal "' + HELLO + '" thing=thing %}')
    request = RequestFactory().get("/", HTTP_COOKIE="sessionid=abc")
    with pytest.raises(TemplateSyntaxError, match="plain values"):
        page.render(Context({"request": request, "thing": object()}))
