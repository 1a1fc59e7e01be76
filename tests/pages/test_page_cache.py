"""The page cache, through Django's test client: what is stored, served and invalidated.

These run on whatever ``DATABASE_URL``/``CACHE_URL`` name (SQLite and the file cache by
default; PostgreSQL with Redis or Memcached under ``python -m tests.backends``). Every
request goes through ``StrataMiddleware`` with the demo's settings: page cache, query
cache and fragment cache on, no accelerator.
"""

from __future__ import annotations

import re

import pytest
from django.core.cache import caches
from django.db import connection
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from strata.conf import strata_settings
from strata.middleware import StrataMiddleware
from strata.pages import cache as page_cache
from strata.pages.entries import PassMarker
from strata.pages.keys import page_key
from strata.querycache.control import caching_disabled
from strata.tags.versions import VERSION_PREFIX

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


def strata(response) -> str:
    return response.headers.get("X-Strata", "")


def get(client: Client, path: str, **extra):
    return client.get(path, **extra)


@pytest.fixture
def anon() -> Client:
    return Client()


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_page_is_rendered_once_then_served_without_the_database(newsroom, anon):
    first = get(anon, "/articles/a1/")
    assert strata(first) == "page-miss"

    with CaptureQueriesContext(connection) as queries:
        second = get(anon, "/articles/a1/")

    assert strata(second) == "page-hit"
    assert len(queries) == 0
    assert second.content == first.content
    assert second.status_code == 200


def test_a_comment_on_article_1_shows_at_once_and_keeps_article_2_cached(newsroom, anon):
    from newsroom.models import Comment

    get(anon, "/articles/a1/")
    get(anon, "/articles/a2/")

    Comment.objects.create(article=newsroom.a1, user=newsroom.ann, body="fresh words")

    after = get(anon, "/articles/a1/")
    assert strata(after) == "page-miss"
    assert "fresh words" in after.content.decode()
    assert strata(get(anon, "/articles/a2/")) == "page-hit"


def test_editing_an_article_changes_its_page_and_the_listings(newsroom, anon):
    get(anon, "/articles/a3/")
    get(anon, "/")
    get(anon, "/authors/two/")

    newsroom.a3.title = "A3, revised"
    newsroom.a3.save()

    for path in ("/articles/a3/", "/", "/authors/two/"):
        response = get(anon, path)
        assert strata(response) == "page-miss", path
        assert "A3, revised" in response.content.decode(), path


def test_renaming_a_tag_reaches_every_page_that_shows_it(newsroom, anon):
    get(anon, "/articles/a1/")
    get(anon, "/tags/x/")

    newsroom.tag_x.name = "Renamed X"
    newsroom.tag_x.save()

    assert "Renamed X" in get(anon, "/articles/a1/").content.decode()
    assert "Renamed X" in get(anon, "/tags/x/").content.decode()


def test_a_logged_in_reader_gets_the_shared_page_with_holes_not_their_name(newsroom):
    ann = logged_in(newsroom.ann)  # bob wrote the only comment on a3
    bob = logged_in(newsroom.bob)
    assert strata(get(bob, "/articles/a3/")) == "page-miss"

    response = get(ann, "/articles/a3/")  # the page bob's request stored

    assert strata(response) == "page-hit"
    html = response.content.decode()
    assert "ann" not in re.sub(r"<esi:include[^>]*>|data-src=\"[^\"]*\"", "", html)
    assert "bob" in html  # as the commenter, not as the reader
    assert "<esi:include" in html and "strata-hole" in html
    assert response.headers["Surrogate-Control"] == 'content="ESI/1.0"'


def test_a_page_that_reads_the_user_is_personal_and_says_why(newsroom):
    ann, bob = logged_in(newsroom.ann), logged_in(newsroom.bob)

    first = get(ann, "/me/comments/")
    second = get(bob, "/me/comments/")

    assert strata(first) == "bypass: user read in newsroom.views.my_comments"
    assert strata(second) == "bypass: user read in newsroom.views.my_comments"
    assert "private" in second.headers["Cache-Control"]
    assert first.content != second.content


def test_requests_with_authorization_never_touch_the_page_cache(newsroom, anon):
    get(anon, "/articles/a1/")
    response = get(anon, "/articles/a1/", HTTP_AUTHORIZATION="Basic YTpi")
    assert strata(response) == "bypass: authorization header"
    assert "private" in response.headers["Cache-Control"]


MESSAGES = "messages=W1siX19qc29uX21lc3NhZ2UiXV0"  # Django's cookie storage


def test_a_request_with_messages_never_touches_the_page_cache_nor_speaks_for_others(newsroom, anon):
    first = get(anon, "/articles/a1/", HTTP_COOKIE=MESSAGES)
    assert strata(first) == "bypass: messages cookie"
    assert "private" in first.headers["Cache-Control"]
    assert caches[strata_settings().cache_alias].get(_key("/articles/a1/", MESSAGES)) is None

    other = get(Client(), "/articles/a1/", HTTP_COOKIE="foo=bar")  # the same page key
    assert strata(other) == "page-miss"
    assert strata(get(Client(), "/articles/a1/", HTTP_COOKIE="foo=baz")) == "page-hit"
    assert strata(get(Client(), "/articles/a1/")) == "page-miss"  # nobody's own variant
    # The stored page is not handed to the person whose messages wait to be shown.
    assert strata(get(Client(), "/articles/a1/", HTTP_COOKIE=MESSAGES)) == "bypass: messages cookie"


def test_a_page_personal_for_one_reader_never_tells_the_next_reader_their_reason(clean_cache):
    def view(request):
        response = HttpResponse(b"<p>the same page</p>")
        if request.COOKIES.get("who") == "ann":
            response["Cache-Control"] = "private"  # for ann only
        return response

    middleware = StrataMiddleware(view)
    path = "/conditionally-private/"

    def answer(cookie: str):
        return middleware(RequestFactory().get(path, HTTP_COOKIE=cookie))

    assert answer("who=ann")["X-Strata"] == "bypass: Cache-Control: private"
    # Ann's answer left a pass marker under the key; bob's answer is his own, and shared.
    bob = answer("who=bob")
    assert bob["X-Strata"] == "page-miss"
    assert "public" in bob["Cache-Control"]
    assert answer("who=cid")["X-Strata"] == "page-hit"  # it replaced the marker


def test_a_pass_marker_is_written_once_not_by_every_personal_answer(clean_cache, monkeypatch):
    from django.core.cache import caches

    def view(request):
        response = HttpResponse(b"<p>for you</p>")
        response["Cache-Control"] = "private"
        return response

    middleware = StrataMiddleware(view)
    cache = caches[middleware.conf.cache_alias]
    written = []
    real_set = type(cache).set

    def counting_set(self, key, value, *args, **kwargs):
        if isinstance(value, PassMarker):
            written.append(key)
        return real_set(self, key, value, *args, **kwargs)

    monkeypatch.setattr(type(cache), "set", counting_set)
    for _ in range(5):
        answer = middleware(RequestFactory().get("/for-you/", HTTP_COOKIE="sessionid=x"))
        assert answer["X-Strata"] == "bypass: Cache-Control: private"
    assert len(written) == 1


def test_posts_are_never_served_from_the_cache(newsroom):
    ann = logged_in(newsroom.ann)
    get(ann, "/articles/a1/")
    response = ann.post("/articles/a1/", {"body": "posted"})
    assert response.status_code == 302
    assert strata(response).startswith("bypass: ")


def test_head_is_served_from_the_get_entry_without_a_body(newsroom, anon):
    get(anon, "/articles/a1/")
    response = anon.head("/articles/a1/")
    assert strata(response) == "page-hit"
    assert response.content == b""
    assert int(response.headers["Content-Length"]) > 1000


def test_tracking_parameters_share_the_page(newsroom, anon):
    get(anon, "/tags/x/?page=1")
    assert strata(get(anon, "/tags/x/?utm_source=mail&page=1&fbclid=z")) == "page-hit"


def test_the_view_never_sees_tracking_parameters_so_it_cannot_store_them(newsroom, anon):
    # Django's APPEND_SLASH redirect repeats the query string in its Location.
    planted = get(anon, "/tags/x?page=1&utm_source=evil.example")
    assert planted.status_code == 301
    assert planted["Location"] == "/tags/x/?page=1"

    clean = get(anon, "/tags/x?page=1")
    assert strata(clean) == "page-hit"
    assert "evil.example" not in clean["Location"]


def test_a_404_is_cached_briefly_and_goes_when_the_page_appears(newsroom, anon):
    from newsroom.models import Article

    assert get(anon, "/articles/later/").status_code == 404
    assert strata(get(anon, "/articles/later/")) == "page-hit"

    Article.objects.create(
        title="Later",
        slug="later",
        author=newsroom.author1,
        body="b",
        published_at=newsroom.a1.published_at,
    )

    response = get(anon, "/articles/later/")
    assert response.status_code == 200
    assert strata(response) == "page-miss"


def test_a_page_past_its_lifetime_is_served_stale_while_one_request_refreshes(
    newsroom, anon, monkeypatch
):
    get(anon, "/articles/a1/")
    later = page_cache.clock() + strata_settings().page_cache.timeout + 1
    monkeypatch.setattr(page_cache, "clock", lambda: later)

    refresh = get(anon, "/articles/a1/")
    assert strata(refresh) == "page-miss"  # this request took the refresh
    assert strata(get(anon, "/articles/a1/")) == "page-hit"


def test_while_another_request_refreshes_an_expired_page_the_stale_copy_is_served(
    newsroom, anon, monkeypatch
):
    get(anon, "/articles/a1/")
    later = page_cache.clock() + strata_settings().page_cache.timeout + 1
    monkeypatch.setattr(page_cache, "clock", lambda: later)
    cache = caches[strata_settings().cache_alias]
    # Another request holds the refresh of every page.
    monkeypatch.setattr(cache, "add", lambda *args, **kwargs: False)

    assert strata(get(anon, "/articles/a1/")) == "page-stale"


def test_an_expired_page_whose_data_changed_is_never_served_stale(newsroom, anon, monkeypatch):
    from newsroom.models import Comment

    get(anon, "/articles/a1/")
    Comment.objects.create(article=newsroom.a1, user=newsroom.ann, body="newer")
    later = page_cache.clock() + strata_settings().page_cache.timeout + 1
    monkeypatch.setattr(page_cache, "clock", lambda: later)

    response = get(anon, "/articles/a1/")
    assert strata(response) == "page-miss"
    assert "newer" in response.content.decode()


def test_losing_the_versions_never_brings_an_old_page_back(newsroom, anon):
    from newsroom.models import Comment

    get(anon, "/articles/a1/")
    Comment.objects.create(article=newsroom.a1, user=newsroom.ann, body="after")
    cache = caches[strata_settings().cache_alias]
    entry = cache.get(_key("/articles/a1/"))
    # The version store restarts empty (or evicts): the versions of the page's tags go.
    cache.delete_many([VERSION_PREFIX + tag for tag in entry.snapshot])

    response = get(anon, "/articles/a1/")
    assert strata(response) == "page-miss"
    assert "after" in response.content.decode()


def _key(path: str, cookie: str = "") -> str:
    conf = strata_settings().page_cache
    request = RequestFactory().get(path, **({"HTTP_COOKIE": cookie} if cookie else {}))
    return page_key(request, conf.ignored_parameters, conf.max_query_string, False)


def test_a_response_that_sets_a_cookie_is_never_stored(newsroom, anon):
    first = get(anon, "/accounts/login/")
    assert "Set-Cookie" in str(first.headers) or first.cookies
    assert strata(first).startswith("bypass: ")
    assert strata(get(anon, "/accounts/login/")).startswith("bypass: ")


def test_the_admin_is_excluded(newsroom, anon):
    assert strata(get(anon, "/admin/login/")) == "bypass: excluded path /admin/"


def test_a_permanent_redirect_is_cached_briefly(newsroom, anon):
    first = get(anon, "/articles/a1")  # APPEND_SLASH
    assert first.status_code == 301
    again = get(anon, "/articles/a1")
    assert again.status_code == 301
    assert strata(again) == "page-hit"
    assert again.headers["Location"] == "/articles/a1/"


def test_shared_pages_tell_cdns_how_long_they_may_serve_them_stale(newsroom, anon):
    cache_control = get(anon, "/articles/a1/").headers["Cache-Control"]
    assert "s-maxage=" in cache_control and "stale-while-revalidate=60" in cache_control


def test_a_purge_that_fails_never_breaks_the_write(newsroom, settings, caplog):
    from newsroom.models import Comment

    # Port 9 on loopback: nothing listens, every purge is refused at once.
    settings.STRATA = {
        **settings.STRATA,
        "ACCELERATORS": ["http://127.0.0.1:9"],
        "PURGE_SECRET": "a-secret-of-some-length",
        "PURGE_WAIT": 0.5,
        # This process purges by itself (on Redis the bus would leave it to a purger).
        "BUS": {"ENABLED": False},
    }
    ann = logged_in(newsroom.ann)
    with caplog.at_level("WARNING", logger="strata.edge"):
        answer = ann.post("/articles/a2/", {"body": "despite Varnish"})
    assert answer.status_code == 302
    assert any(record.name == "strata.edge" for record in caplog.records)  # and it said so
    assert Comment.objects.filter(body="despite Varnish").exists()
    assert "despite Varnish" in get(Client(), "/articles/a2/").content.decode()


def test_a_visitor_without_cookies_gets_a_whole_page_without_holes(newsroom, anon):
    html = get(anon, "/articles/a1/").content.decode()
    assert 'id="hello-box"' in html  # the hello box, filled in for nobody in particular
    assert "<esi:include" not in html
    # The form's token alone is left to the browser, which gets its cookie with it.
    assert html.count("<strata-hole") == 1


@pytest.fixture
def database_down(newsroom):
    """``database_down()``: every new query fails as when PostgreSQL is not answering.

    The database is back when the test ends (before the newsroom is cleaned up), or
    when the test calls ``database_down.back()``.
    """
    from django.db import OperationalError

    patch = pytest.MonkeyPatch()

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused (the test stopped the database)")

    def stop():
        patch.setattr(connection, "cursor", refuse)

    stop.back = patch.undo
    yield stop
    patch.undo()


def test_while_the_database_is_down_a_page_past_its_lifetime_is_still_served(
    newsroom, anon, monkeypatch, database_down
):
    first = get(anon, "/articles/a1/")
    later = page_cache.clock() + strata_settings().page_cache.timeout + 1
    monkeypatch.setattr(page_cache, "clock", lambda: later)
    database_down()

    for _ in range(2):  # and the copy is still there for the next reader
        # The query cache could rebuild this page without the database: keep it out.
        with caching_disabled():
            response = get(anon, "/articles/a1/")
        assert (response.status_code, strata(response)) == (200, "page-stale")
        assert response.content == first.content


def test_while_the_database_is_down_a_page_never_cached_gets_a_clear_503(
    newsroom, anon, database_down
):
    database_down()

    response = get(anon, "/articles/a2/")

    assert response.status_code == 503
    assert response["Retry-After"].isdigit()
    assert "no-store" in response["Cache-Control"]
    assert "Back in a moment" in response.content.decode()
    assert strata(response) == "bypass: status 503"
    assert caches[strata_settings().cache_alias].get(_key("/articles/a2/")) is None


def test_once_the_database_is_back_the_page_is_rendered_and_cached_again(
    newsroom, anon, database_down
):
    database_down()
    assert get(anon, "/articles/a2/").status_code == 503
    database_down.back()

    assert strata(get(anon, "/articles/a2/")) == "page-miss"
    assert strata(get(anon, "/articles/a2/")) == "page-hit"
