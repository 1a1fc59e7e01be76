"""Bench mode: ``X-Strata-Bench: warm|cold`` with the purge secret renders past the page cache.

The protocol ``strata bench`` relies on (see :mod:`strata.timing`): warm keeps the query
and fragment caches, cold turns every Strata cache off; both are personal, unstorable,
and say what they cost.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from strata.fragments import cache as fragments
from strata.querycache.stats import reset_stats, stats
from tests.timing.conftest import SECRET, sections


def bench(client: Client, path: str, mode: str, secret: str | None = SECRET):
    headers = {"HTTP_X_STRATA_BENCH": mode}
    if secret is not None:
        headers["HTTP_X_STRATA_BENCH_SECRET"] = secret
    return client.get(path, **headers)


@pytest.fixture
def client(newsroom, strata_with) -> Client:
    strata_with(PURGE_SECRET=SECRET)
    return Client()


def test_warm_skips_the_page_cache_but_uses_the_query_cache(client):
    assert client.get("/articles/a1/").headers["X-Strata"] == "page-miss"
    assert client.get("/articles/a1/").headers["X-Strata"] == "page-hit"
    reset_stats()

    response = bench(client, "/articles/a1/", "warm")

    assert response.headers["X-Strata"] == "bypass: bench warm"
    assert stats["hit"] > 0 and stats["miss"] == 0
    assert response.headers["X-Strata-Queries"] == "0"
    assert response.content == client.get("/articles/a1/").content


def test_warm_neither_reads_nor_writes_the_page_cache(client):
    bench(client, "/articles/a2/", "warm")

    assert client.get("/articles/a2/").headers["X-Strata"] == "page-miss"


def test_cold_renders_from_the_database_with_every_cache_off(client):
    client.get("/")  # fills the query, fragment and page caches
    client.get("/")
    reset_stats()
    fragments.reset_stats()

    with CaptureQueriesContext(connection) as queries:
        response = bench(client, "/", "cold")

    assert response.headers["X-Strata"] == "bypass: bench cold"
    assert stats["hit"] == 0 and stats["store"] == 0
    assert fragments.stats["hit"] == 0 and fragments.stats["store"] == 0
    assert int(response.headers["X-Strata-Queries"]) == len(queries) > 0
    assert sections(response)["db"] > 0
    assert client.get("/").headers["X-Strata"] == "page-hit"  # the stored page is untouched


def test_a_bench_response_is_stored_nowhere_and_says_what_it_cost(client):
    response = bench(client, "/articles/a1/", "cold")

    assert response.headers["Cache-Control"] == "private, no-store"
    assert set(sections(response)) >= {"db", "cache", "tpl", "app", "total"}
    assert response.headers["X-Strata-Timing-View"] == "newsroom.views.article_detail"
    slowest = json.loads(response.headers["X-Strata-Slow-Queries"])
    assert 1 <= len(slowest) <= 3
    assert [s["ms"] for s in slowest] == sorted((s["ms"] for s in slowest), reverse=True)
    assert all(s["sql"].startswith("SELECT") and len(s["sql"]) <= 300 for s in slowest)
    assert response.headers["X-Strata-Slow-Queries"].isascii()


def test_server_timing_is_sent_even_when_switched_off(client, strata_with):
    strata_with(PURGE_SECRET=SECRET, TIMING={"SERVER_TIMING": "off"})

    assert "total" in sections(bench(Client(), "/articles/a1/", "warm"))


def test_bench_works_with_timing_switched_off(client, strata_with):
    strata_with(PURGE_SECRET=SECRET, TIMING={"ENABLED": False})

    response = bench(Client(), "/articles/a1/", "cold")

    assert response.headers["X-Strata"] == "bypass: bench cold"
    assert int(response.headers["X-Strata-Queries"]) > 0


@pytest.mark.parametrize("secret", ["wrong", "", None, SECRET + "x", "é"])
def test_a_wrong_or_missing_secret_is_ignored(client, secret):
    client.get("/articles/a1/")

    response = bench(client, "/articles/a1/", "cold", secret)

    assert response.status_code == 200
    assert response.headers["X-Strata"] == "page-hit"
    assert "X-Strata-Queries" not in response.headers


def test_an_unknown_mode_is_ignored(client):
    client.get("/articles/a1/")

    assert bench(client, "/articles/a1/", "lukewarm").headers["X-Strata"] == "page-hit"


def test_without_a_configured_secret_bench_headers_are_ignored(newsroom, strata_with):
    strata_with(PURGE_SECRET="")
    client = Client()
    client.get("/articles/a1/")

    for secret in ("", "anything"):
        response = bench(client, "/articles/a1/", "cold", secret)
        assert response.headers["X-Strata"] == "page-hit"


def test_the_mode_is_read_without_regard_to_case_or_spaces(client):
    assert bench(client, "/articles/a1/", " Cold ").headers["X-Strata"] == "bypass: bench cold"
