"""``Server-Timing`` through the test client: who gets it, and that its sections add up."""

from __future__ import annotations

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.timing.conftest import logged_in, sections


def test_a_personal_response_tells_where_its_time_went(newsroom):
    ann = logged_in(newsroom.ann)

    response = ann.get("/me/comments/")

    assert "private" in response.headers["Cache-Control"]
    assert set(sections(response)) >= {"db", "cache", "tpl", "app", "total"}


def test_a_shared_page_carries_no_timing_by_default(newsroom, anon):
    miss = anon.get("/articles/a1/")
    hit = anon.get("/articles/a1/")

    assert miss.headers["X-Strata"] == "page-miss"
    assert hit.headers["X-Strata"] == "page-hit"
    assert "Server-Timing" not in miss.headers
    assert "Server-Timing" not in hit.headers


def test_all_sends_it_on_shared_pages_and_never_stores_it(newsroom, strata_with):
    strata_with(TIMING={"SERVER_TIMING": "all"})
    client = Client()

    miss = client.get("/articles/a1/")
    hit = client.get("/articles/a1/")

    assert "public" in miss.headers["Cache-Control"]
    assert sections(miss)["db"] > 0
    # The hit's own figures, not the render's stored with the page.
    assert sections(hit)["db"] == 0 and sections(hit)["db_desc"] == "0 queries"
    assert sections(hit)["tpl"] == 0
    assert hit.headers["Server-Timing"].count("total;") == 1


def test_off_sends_it_nowhere(newsroom, strata_with):
    strata_with(TIMING={"SERVER_TIMING": "off"})
    ann = logged_in(newsroom.ann)

    assert "Server-Timing" not in ann.get("/me/comments/").headers


def test_switched_off_timing_adds_nothing(newsroom, strata_with):
    strata_with(TIMING={"ENABLED": False})
    ann = logged_in(newsroom.ann)

    assert "Server-Timing" not in ann.get("/me/comments/").headers


def test_the_sections_of_a_rendered_page_add_up_to_its_total(newsroom, strata_with):
    strata_with(TIMING={"SERVER_TIMING": "all"}, QUERY_CACHE={"ENABLED": False})
    client = Client()

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")

    timing = sections(response)
    assert timing["db"] > 0
    assert timing["db_desc"] == f"{len(queries)} queries"
    assert timing["tpl"] > 0
    assert timing["cache"] > 0  # the page cache's lookup, lock and store
    parts = timing["db"] + timing["cache"] + timing["tpl"] + timing["app"]
    assert abs(timing["total"] - parts) <= 0.03  # each figure is rounded to 0.01 ms


def test_a_view_that_sets_its_own_server_timing_keeps_it(newsroom, strata_with, rf):
    from django.http import HttpResponse

    from strata.middleware import StrataMiddleware

    strata_with(TIMING={"SERVER_TIMING": "all"}, PAGE_CACHE={"ENABLED": False})

    def view(request):
        response = HttpResponse(b"ok")
        response["Server-Timing"] = "search;dur=4"
        return response

    response = StrataMiddleware(view)(rf.get("/anything/"))

    assert response.headers["Server-Timing"].startswith("search;dur=4, db;dur=")
