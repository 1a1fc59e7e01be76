"""The debug toolbar's Strata panel on the demo site: what answered, and why, for real pages.

The toolbar wraps StrataMiddleware (``newsroom_site.settings_debug``); the test client
comes from 127.0.0.1, an internal address, so the toolbar shows; ``outsider()`` does not.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from newsroom.models import Article
from strata.debug import trace
from strata.debug.panel import StrataPanel
from strata.signals import post_invalidation
from tests.debug.conftest import TOOLBAR_MIDDLEWARE, outsider, panel_html, panel_stats

pytestmark = [
    # Real commits: Strata invalidates after commit, and stores nothing read inside a
    # transaction that wrote.
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("seeded", "toolbar"),
]


def article_url() -> str:
    return f"/articles/{Article.objects.order_by('pk').first().slug}/"


def test_a_first_visit_shows_a_page_miss_with_each_query_its_tags_and_the_fragments():
    client = Client()

    response = client.get(article_url())

    assert response["X-Strata"] == "page-miss"
    stats = panel_stats(response)
    assert stats["answer"]["word"] == "page-miss"
    assert stats["queries"], "the view's queries are listed"
    assert {q["result"] for q in stats["queries"]} <= {"hit", "miss", "bypass"}
    assert all(q["tags"] for q in stats["queries"] if q["result"] != "bypass")
    assert any("newsroom_article" in q["sql"] for q in stats["queries"])
    assert stats["fragments"] and all(f["result"] == "miss" for f in stats["fragments"])
    assert any(f["stored"] and f["tags"] for f in stats["fragments"])
    assert stats["accelerator"]["may_store"] is True
    assert "newsroom_article" in " ".join(stats["accelerator"]["tags"])
    html = panel_html(client, response)
    assert "Not in the page cache: rendered by the view, and stored there." in html


def test_a_second_visit_shows_a_page_hit_where_the_view_ran_no_query():
    client = Client()
    client.get(article_url())

    response = client.get(article_url())

    assert response["X-Strata"] == "page-hit"
    stats = panel_stats(response)
    assert stats["answer"]["word"] == "page-hit"
    assert stats["queries"] == [] and stats["fragments"] == []
    assert stats["accelerator"]["may_store"] is True
    assert "the view did not run" in panel_html(client, response)


def test_a_reader_after_a_visitor_gets_the_fragments_and_queries_from_cache():
    Client().get(article_url())  # a visitor without cookies: the blocks are stored
    reader = Client()
    reader.force_login(get_user_model().objects.get(username="reader1"))

    response = reader.get(article_url())  # a page of its own (with cookies)

    assert response["X-Strata"] == "page-miss"
    stats = panel_stats(response)
    assert stats["fragments"] and all(f["result"] == "hit" for f in stats["fragments"])
    assert all(f["tags"] for f in stats["fragments"])
    assert any(q["result"] == "hit" and q["tags"] for q in stats["queries"])
    assert "from cache" in panel_html(reader, response)


def test_a_bypassed_page_shows_its_reason_and_that_no_shared_cache_may_store_it():
    client = Client()
    client.force_login(get_user_model().objects.get(username="reader1"))

    response = client.get("/me/comments/")

    reason = "user read in newsroom.views.my_comments"
    assert response["X-Strata"] == f"bypass: {reason}"
    stats = panel_stats(response)
    assert stats["answer"] == {
        "word": "bypass",
        "reason": reason,
        "summary": f"Rendered by the view and stored in no cache: {reason}.",
    }
    assert stats["accelerator"]["may_store"] is False
    assert stats["accelerator"]["why"] == "Cache-Control: private"
    html = panel_html(client, response)
    assert reason in html and "Bypass reason" in html


def test_the_holes_of_a_shared_page_are_listed_with_their_templates_on_a_miss_and_a_hit():
    client = Client()
    client.force_login(get_user_model().objects.get(username="reader1"))

    for expected in ("page-miss", "page-hit"):
        response = client.get(article_url())
        assert response["X-Strata"] == expected
        holes = panel_stats(response)["holes"]
        assert {hole["template"] for hole in holes} == {
            "newsroom/_hello_box.html",
            "strata/csrf_token.html",
        }, expected
        assert all(hole["esi"] and hole["url"].startswith("/-/hole/") for hole in holes)
        assert panel_stats(response)["accelerator"]["esi"] is True


def test_an_anonymous_visitor_gets_the_csrf_hole_from_the_browser_script_only():
    holes = panel_stats(Client().get(article_url()))["holes"]

    assert [(hole["template"], hole["esi"]) for hole in holes] == [
        ("strata/csrf_token.html", False)
    ]


def test_a_comment_shows_the_invalidations_it_caused():
    client = Client()
    client.force_login(get_user_model().objects.get(username="reader1"))
    article = Article.objects.order_by("pk").first()

    response = client.post(article_url(), {"body": "Seen in the toolbar."}, follow=False)

    assert response.status_code == 302
    from debug_toolbar.toolbar import DebugToolbar

    stored = DebugToolbar.fetch(response["djdt-request-id"])
    invalidations = stored.get_panel_by_id("StrataPanel").get_stats()["invalidations"]
    tags = {tag for inv in invalidations for tag in inv["tags"]}
    assert "newsroom_comment" in tags
    assert f"newsroom_comment.article_id={article.pk}" in tags


def test_a_page_with_the_toolbar_is_private_and_never_served_to_anyone_else():
    mine = Client().get(article_url())

    assert "djdt" in mine.content.decode()
    assert mine["Cache-Control"] == "private"
    assert "xkey" not in mine and "Surrogate-Key" not in mine
    theirs = outsider().get(article_url())
    assert theirs["X-Strata"] == "page-hit"  # the page cache kept the page without the toolbar
    assert "djdt" not in theirs.content.decode()
    assert "s-maxage" in theirs["Cache-Control"] and "xkey" in theirs


def test_a_toolbar_inside_strata_stores_nothing_and_the_panel_says_to_move_it(toolbar):
    toolbar.MIDDLEWARE = [m for m in toolbar.MIDDLEWARE if m != TOOLBAR_MIDDLEWARE]
    toolbar.MIDDLEWARE.insert(1, TOOLBAR_MIDDLEWARE)  # after StrataMiddleware

    mine = Client().get(article_url())

    # Strata decides after the toolbar rendered itself: whatever the reason it finds
    # (the toolbar's CSRF token, or the panel's "private"), the page is stored nowhere.
    assert mine["X-Strata"].startswith("bypass: ")
    stats = panel_stats(mine)
    assert stats["toolbar_first"] is False
    assert "Put DebugToolbarMiddleware before StrataMiddleware" in stats["answer"]["summary"]
    theirs = outsider().get(article_url())
    assert theirs["X-Strata"] == "page-miss"
    assert "djdt" not in theirs.content.decode()
    assert [m.id for m in StrataPanel.run_checks()] == ["strata.W080"]


def test_the_panel_stays_on_when_unticked_since_it_guards_the_caches():
    client = Client()
    client.cookies["djdtStrataPanel"] = "off"

    response = client.get(article_url())

    assert response["Cache-Control"] == "private"


def test_outside_the_traced_request_nothing_is_recorded_and_no_receiver_stays():
    Client().get(article_url())

    assert trace.active.get() is None
    assert not any("strata-debug-trace" in str(key) for key, *_ in post_invalidation.receivers)
    assert StrataPanel.run_checks() == []


def test_under_asgi_the_panel_traces_the_request_and_keeps_the_page_private():
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    client = AsyncClient()
    async_to_sync(client.get)(article_url())

    response = async_to_sync(client.get)(article_url())

    assert response["X-Strata"] == "page-hit"
    assert response["Cache-Control"] == "private"
    assert panel_stats(response)["answer"]["word"] == "page-hit"


def test_with_an_async_toolbar_the_queries_of_the_sync_view_are_still_traced(toolbar, monkeypatch):
    # Without StrataMiddleware (sync only) every middleware is async: so is the toolbar.
    toolbar.MIDDLEWARE = [
        TOOLBAR_MIDDLEWARE,
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ]
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    awaited = []
    answered_later = StrataPanel._answered_later

    def spy(self, pending, recorded):
        awaited.append(pending)
        return answered_later(self, pending, recorded)

    monkeypatch.setattr(StrataPanel, "_answered_later", spy)

    response = async_to_sync(AsyncClient().get)(article_url())

    assert len(awaited) == 1, "the toolbar ran in async mode"
    assert response["Cache-Control"] == "private"
    stats = panel_stats(response)
    assert stats["answer"]["word"] == ""
    assert any("newsroom_article" in query["sql"] for query in stats["queries"])
