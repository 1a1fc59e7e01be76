"""Shared or personal: the pure rule that decides what an accelerator may store."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from strata.edge.policy import apply_edge_cache_control, personal_reason

rf = RequestFactory()


def test_anonymous_get_is_shared_and_gets_s_maxage():
    response = HttpResponse("hi")
    assert apply_edge_cache_control(rf.get("/"), response, edge_ttl=30) is None
    assert "s-maxage=30" in response["Cache-Control"]
    assert "public" in response["Cache-Control"]


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (rf.post("/"), "method POST"),
        (rf.get("/", HTTP_AUTHORIZATION="Basic eDp5"), "authorization header"),
        (rf.get("/", HTTP_COOKIE="messages=W1siX19qc29uX21lc3NhZ2UiXV0"), "messages cookie"),
    ],
)
def test_personal_requests_are_never_shared(request_, reason):
    response = HttpResponse("hi")
    assert apply_edge_cache_control(request_, response, edge_ttl=30) == reason
    assert "private" in response["Cache-Control"]
    assert "s-maxage" not in response["Cache-Control"]


def test_a_session_cookie_alone_does_not_make_a_page_personal():
    request = rf.get("/", HTTP_COOKIE="sessionid=abc")
    assert personal_reason(request, HttpResponse("the same for everyone")) is None


def test_a_view_that_read_the_session_or_the_user_is_personal():
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.signed_cookies import SessionStore
    from django.utils.functional import SimpleLazyObject

    request = rf.get("/", HTTP_COOKIE="sessionid=abc")
    request.session = SessionStore()
    request.user = SimpleLazyObject(AnonymousUser)
    assert personal_reason(request, HttpResponse()) is None

    request.session.get("anything")
    assert personal_reason(request, HttpResponse()) == "session read in /"

    request.user.is_authenticated  # noqa: B018
    assert personal_reason(request, HttpResponse()) == "user read in /"


def test_without_cookies_the_session_and_user_are_nobodys():
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.signed_cookies import SessionStore
    from django.utils.functional import SimpleLazyObject

    request = rf.get("/")
    request.session = SessionStore()
    request.user = SimpleLazyObject(AnonymousUser)
    request.user.is_authenticated  # noqa: B018
    assert personal_reason(request, HttpResponse()) is None


def test_a_view_that_used_a_csrf_token_is_personal_and_the_hint_names_the_hole():
    from django.middleware.csrf import get_token

    request = rf.get("/")
    get_token(request)
    assert "{% personal_csrf_token %}" in personal_reason(request, HttpResponse())


def test_vary_beyond_accept_encoding_is_personal():
    response = HttpResponse()
    response["Vary"] = "Accept-Encoding"
    assert personal_reason(rf.get("/"), response) is None
    response["Vary"] = "Accept-Encoding, Cookie"
    assert personal_reason(rf.get("/", HTTP_COOKIE="a=b"), response) == "Vary: cookie"
    assert personal_reason(rf.get("/"), response) is None  # without cookies: one variant
    response["Vary"] = "Accept-Language"
    assert personal_reason(rf.get("/"), response) == "Vary: accept-language"


def test_a_response_that_sets_a_cookie_is_personal():
    response = HttpResponse("hi")
    response.set_cookie("csrftoken", "x")
    assert personal_reason(rf.get("/"), response) == "response sets a cookie"


@pytest.mark.parametrize("directive", ["private", "no-store", "no-cache"])
def test_the_views_own_cache_control_is_respected(directive):
    response = HttpResponse("hi")
    response["Cache-Control"] = directive
    assert personal_reason(rf.get("/"), response) == f"Cache-Control: {directive}"


def test_vary_star_and_server_errors_are_not_shared():
    varying = HttpResponse("hi")
    varying["Vary"] = "*"
    assert personal_reason(rf.get("/"), varying) == "Vary: *"
    assert personal_reason(rf.get("/"), HttpResponse(status=500)) == "status 500"


def test_a_view_that_chose_its_own_lifetime_keeps_it():
    response = HttpResponse("hi")
    response["Cache-Control"] = "public, s-maxage=600"
    apply_edge_cache_control(rf.get("/"), response, edge_ttl=30)
    assert response["Cache-Control"] == "public, s-maxage=600"


def test_a_not_found_page_lives_at_the_edge_no_longer_than_its_status_allows(rf):
    response = HttpResponse(status=404)

    apply_edge_cache_control(rf.get("/nope/"), response, edge_ttl=300, status_ttls={404: 30})

    assert "s-maxage=30" in response["Cache-Control"]


def test_a_status_lifetime_never_lengthens_the_edge_ttl(rf):
    response = HttpResponse(status=301)

    apply_edge_cache_control(rf.get("/old/"), response, edge_ttl=10, status_ttls={301: 60})

    assert "s-maxage=10" in response["Cache-Control"]


def test_a_stream_is_personal_unless_its_view_shares_it():
    from django.http import StreamingHttpResponse

    stream = StreamingHttpResponse(iter([b"a", b"b"]))
    assert apply_edge_cache_control(rf.get("/export/"), stream, edge_ttl=30) == (
        "streaming response"
    )
    assert "private" in stream["Cache-Control"]

    static = StreamingHttpResponse(iter([b"body{}"]))
    static["Cache-Control"] = "max-age=315360000, public, immutable"
    assert apply_edge_cache_control(rf.get("/static/a.css"), static, edge_ttl=30) is None
    assert static["Cache-Control"] == "max-age=315360000, public, immutable"


@pytest.mark.django_db
def test_static_files_leave_with_whitenoises_lifetime_past_the_page_cache(client):
    """The demo serves static files with WhiteNoise's middleware, behind Strata's."""
    answer = client.get("/static/newsroom/site.css")
    assert answer.status_code == 200
    assert "public" in answer["Cache-Control"]
    assert "private" not in answer["Cache-Control"]
    assert answer["X-Strata"] == "bypass: streaming response"  # not in the page cache
    answer.close()  # a stream's request ends when it is closed (request_finished)
