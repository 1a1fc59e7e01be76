"""Page-cache hits answered below Django's request handling (``PageCacheApplication``)."""

from __future__ import annotations

from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test.utils import CaptureQueriesContext

from strata.pages import wsgi as app_module
from strata.pages.wsgi import PageCacheApplication

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


@pytest.fixture
def app():
    return PageCacheApplication(WSGIHandler())


def call(application, path: str, method: str = "GET", **extra):
    """One request through a WSGI application: (status, headers, body)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "HTTP_HOST": "testserver",
        **extra,
    }
    setup_testing_defaults(environ)  # the rest of what a WSGI server puts in
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    result = application(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return seen["status"], seen["headers"], body


def test_a_hit_is_answered_before_django_without_the_database(newsroom, app):
    status, headers, first = call(app, "/articles/a1/")
    assert headers["X-Strata"] == "page-miss"

    with CaptureQueriesContext(connection) as queries:
        status, headers, body = call(app, "/articles/a1/")

    assert status == "200 OK"
    assert headers["X-Strata"] == "page-hit"
    assert headers["X-Strata-Server"]
    assert body == first
    assert int(headers["Content-Length"]) == len(body)
    assert len(queries) == 0


def test_a_page_whose_data_changed_goes_to_django_and_is_rendered_again(newsroom, app):
    from newsroom.models import Comment

    call(app, "/articles/a1/")
    Comment.objects.create(article=newsroom.a1, user=newsroom.ann, body="below django")

    _, headers, body = call(app, "/articles/a1/")
    assert headers["X-Strata"] == "page-miss"
    assert b"below django" in body


def test_head_gets_the_headers_of_the_get_and_no_body(newsroom, app):
    _, _, page = call(app, "/articles/a1/")
    status, headers, body = call(app, "/articles/a1/", method="HEAD")
    assert headers["X-Strata"] == "page-hit"
    assert body == b""
    assert int(headers["Content-Length"]) == len(page)


def test_posts_credentials_and_unknown_hosts_go_to_django(newsroom, app):
    call(app, "/articles/a1/")
    _, headers, _ = call(app, "/articles/a1/", HTTP_AUTHORIZATION="Basic YTpi")
    assert headers["X-Strata"] == "bypass: authorization header"
    status, _, _ = call(app, "/articles/a1/", HTTP_HOST="evil.example")
    assert status.startswith("400")
    status, _, _ = call(app, "/articles/a1/", method="POST", CONTENT_LENGTH="0")
    assert status.startswith("403")  # Django's CSRF check: it ran


def test_a_logged_in_reader_is_served_the_page_with_holes(newsroom, app):
    from django.test import Client

    reader = Client()
    reader.force_login(newsroom.ann)
    cookie = f"sessionid={reader.cookies['sessionid'].value}"
    call(app, "/articles/a3/", HTTP_COOKIE=cookie)
    _, headers, body = call(app, "/articles/a3/", HTTP_COOKIE=cookie)
    assert headers["X-Strata"] == "page-hit"
    assert b"<esi:include" in body
    _, _, anonymous = call(app, "/articles/a3/")
    assert b"<esi:include" not in anonymous  # its own page, hello box filled in


def test_bench_requests_go_on_to_django_which_checks_their_secret(newsroom, settings):
    settings.STRATA = {**settings.STRATA, "PURGE_SECRET": "a-secret-of-some-length"}
    app = PageCacheApplication(WSGIHandler())
    call(app, "/articles/a1/")
    call(app, "/articles/a1/")  # cached now

    _, headers, _ = call(
        app,
        "/articles/a1/",
        HTTP_X_STRATA_BENCH="cold",
        HTTP_X_STRATA_BENCH_SECRET="a-secret-of-some-length",
    )
    assert headers["X-Strata"] == "bypass: bench cold"
    _, headers, _ = call(
        app, "/articles/a1/", HTTP_X_STRATA_BENCH="cold", HTTP_X_STRATA_BENCH_SECRET="wrong"
    )
    assert headers["X-Strata"] == "page-hit"  # an unknown secret changes nothing


def test_misses_and_hits_keep_to_the_wsgi_spec_plain_str_headers_included(newsroom):
    # wsgiref's validator asserts every header value is exactly a str (PEP 3333).
    app = validator(PageCacheApplication(WSGIHandler()))

    _, miss, _ = call(app, "/articles/a1/", SCRIPT_NAME="")
    _, hit, _ = call(app, "/articles/a1/", SCRIPT_NAME="")

    assert (miss["X-Strata"], hit["X-Strata"]) == ("page-miss", "page-hit")


def test_keys_are_remembered_only_for_what_the_rules_read(newsroom, app, monkeypatch):
    """A repeated request builds no Django request; anything its key or the bypass rules
    read (here the host, the cookies) makes it a request of its own."""
    call(app, "/articles/a1/")
    call(app, "/articles/a1/")
    built = []
    original = app_module.WSGIRequest
    monkeypatch.setattr(app_module, "WSGIRequest", lambda env: built.append(1) or original(env))

    _, headers, _ = call(app, "/articles/a1/")
    assert headers["X-Strata"] == "page-hit" and built == []
    status, _, _ = call(app, "/articles/a1/", HTTP_HOST="evil.example")
    assert status.startswith("400") and built
    _, headers, _ = call(app, "/articles/a1/", HTTP_COOKIE="sessionid=nobody")
    assert headers["X-Strata"] != "page-hit"  # another page: the one for readers with cookies
    _, headers, _ = call(app, "/articles/a1/", HTTP_COOKIE="sessionid=nobody; messages=x")
    assert headers["X-Strata"] == "bypass: messages cookie"
