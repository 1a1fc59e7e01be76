"""``/-/metrics``: Prometheus's text format, whose numbers move as requests are made.

Values are counters of the whole test process, so each test compares two readings.
"""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from strata.pages.wsgi import PageCacheApplication
from tests.metrics.conftest import scrape
from tests.pages.test_wsgi import call

ARTICLE_VIEW = "newsroom.views.article_detail"
OUTSIDE = "203.0.113.9"


def test_the_page_parses_and_is_stored_nowhere(newsroom):
    response = Client().get("/-/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert set(response["Cache-Control"].replace(" ", "").split(",")) == {"private", "no-store"}
    names = {f.name for f in text_string_to_metric_families(response.content.decode())}
    assert {
        "strata_requests",
        "strata_request_duration_seconds",
        "strata_invalidations",
        "strata_query_cache",
    } <= names


def test_an_outside_address_is_refused(newsroom):
    response = Client(REMOTE_ADDR=OUTSIDE).get("/-/metrics")

    assert response.status_code == 403
    assert b"strata_" not in response.content
    assert "no-store" in response["Cache-Control"]


def test_behind_a_proxy_the_forwarded_client_decides(newsroom):
    forwarded_outside = Client(HTTP_X_FORWARDED_FOR=f"127.0.0.1, {OUTSIDE}")
    forwarded_header = Client(HTTP_FORWARDED=f"for={OUTSIDE}")
    forwarded_local = Client(HTTP_X_FORWARDED_FOR="127.0.0.1")

    assert forwarded_outside.get("/-/metrics").status_code == 403
    assert forwarded_header.get("/-/metrics").status_code == 403
    assert forwarded_local.get("/-/metrics").status_code == 200


def test_staff_may_read_them_from_anywhere(newsroom):
    newsroom.ann.is_staff = True
    newsroom.ann.save()
    staff, reader = Client(REMOTE_ADDR=OUTSIDE), Client(REMOTE_ADDR=OUTSIDE)
    staff.force_login(newsroom.ann)
    reader.force_login(newsroom.bob)

    assert staff.get("/-/metrics").status_code == 200
    assert reader.get("/-/metrics").status_code == 403


def test_the_path_without_a_slash_is_the_one(newsroom):
    # Prometheus's default metrics_path has no trailing slash.
    assert Client().get("/-/metrics/").status_code == 404


def test_a_page_hit_below_django_counts_one_page_hit_of_its_view(newsroom):
    from django.core.handlers.wsgi import WSGIHandler

    app = PageCacheApplication(WSGIHandler())
    _, headers, _ = call(app, "/articles/a1/")
    assert headers["X-Strata"] == "page-miss"
    before = scrape()

    _, headers, _ = call(app, "/articles/a1/")
    assert headers["X-Strata"] == "page-hit"
    after = scrape()

    hit = {"view": ARTICLE_VIEW, "outcome": "page-hit", "reason": ""}
    assert (
        after.value("strata_requests_total", **hit) - before.value("strata_requests_total", **hit)
        == 1
    )
    timed = {"view": ARTICLE_VIEW, "outcome": "page-hit"}
    count = "strata_request_duration_seconds_count"
    assert after.value(count, **timed) - before.value(count, **timed) == 1


def test_a_hit_through_the_middleware_and_a_miss_count_apart(newsroom):
    client = Client()
    before = scrape()

    assert client.get("/articles/a2/")["X-Strata"] == "page-miss"
    assert client.get("/articles/a2/")["X-Strata"] == "page-hit"
    after = scrape()

    for outcome in ("page-miss", "page-hit"):
        labels = {"view": ARTICLE_VIEW, "outcome": outcome, "reason": ""}
        grown = after.value("strata_requests_total", **labels) - before.value(
            "strata_requests_total", **labels
        )
        assert grown == 1, outcome


def test_a_render_is_split_into_db_cache_template_and_app(newsroom):
    before = scrape()

    Client().get("/articles/a3/")
    after = scrape()

    name = "strata_render_section_seconds_count"
    for section in ("db", "cache", "template", "app"):
        labels = {"view": ARTICLE_VIEW, "section": section}
        assert after.value(name, **labels) - before.value(name, **labels) == 1, section
    # A render of an article reads the database.
    db = {"view": ARTICLE_VIEW, "section": "db"}
    assert after.value("strata_render_section_seconds_sum", **db) > before.value(
        "strata_render_section_seconds_sum", **db
    )


def test_a_bypass_shows_its_reason(newsroom):
    before = scrape()

    word = Client(HTTP_AUTHORIZATION="Basic Ym9iOng=").get("/articles/a1/")["X-Strata"]
    after = scrape()

    assert word == "bypass: authorization header"
    labels = {"view": ARTICLE_VIEW, "outcome": "bypass", "reason": "authorization header"}
    assert (
        after.value("strata_requests_total", **labels)
        - before.value("strata_requests_total", **labels)
        == 1
    )


def test_query_cache_misses_stores_and_hits_move(newsroom):
    from newsroom.models import Article

    before = scrape()
    list(Article.objects.filter(slug="a1"))  # a miss, stored
    list(Article.objects.filter(slug="a1"))  # a hit
    after = scrape()

    def grown(result: str) -> float:
        labels = {"result": result}
        return after.value("strata_query_cache_total", **labels) - before.value(
            "strata_query_cache_total", **labels
        )

    assert grown("miss") >= 1
    assert grown("store") >= 1
    assert grown("hit") >= 1


def test_a_write_counts_an_invalidation_its_tags_and_its_rows(newsroom):
    from newsroom.models import Article

    before = scrape()
    Article.objects.filter(pk=newsroom.a1.pk).update(title="Changed")
    after = scrape()

    assert (
        after.value("strata_invalidations_total") - before.value("strata_invalidations_total") == 1
    )
    tags = "strata_invalidated_tags_total"
    assert after.value(tags) - before.value(tags) >= 2  # the row's tag and the table's
    rows = "strata_invalidation_rows_total"
    assert after.value(rows) - before.value(rows) == 1
    labels = {"result": "invalidate"}
    assert after.value("strata_query_cache_total", **labels) > before.value(
        "strata_query_cache_total", **labels
    )


def test_a_view_past_the_bound_is_counted_as_other(newsroom, monkeypatch):
    from strata.metrics import registry

    monkeypatch.setattr(registry.tally, "views", set())
    monkeypatch.setattr(registry.tally, "requests", {})
    monkeypatch.setattr(registry, "MAX_VIEWS", 0)
    before = scrape()

    Client().get("/articles/a2/")
    after = scrape()

    other = "strata_request_duration_seconds_count"
    miss = {"view": "(other)", "outcome": "page-miss"}
    assert after.total(other, **miss) - before.total(other, **miss) == 1


def test_a_failed_purge_is_counted_for_its_accelerator_and_fences_it(newsroom, settings):
    import time

    from newsroom.models import Comment
    from strata.edge.purge import reset_purger

    node = {"accelerator": "127.0.0.1:9"}  # nobody listens there
    settings.STRATA = {
        **settings.STRATA,
        "ACCELERATORS": ["http://127.0.0.1:9"],
        "PURGE_SECRET": "a-secret-of-sixteen+",
        "BUS": {"ENABLED": False},  # this process purges by itself, on every backend
    }
    reset_purger()
    before = scrape()
    try:
        Comment.objects.create(article=newsroom.a1, user=newsroom.ann, body="purge me")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = scrape()
            retried = after.value("strata_purges_total", result="retried", **node)
            # The fence records the debt once the round that failed is over.
            fenced = after.value("strata_fence_owed", **node) == 1
            if fenced and retried > before.value("strata_purges_total", result="retried", **node):
                break
            time.sleep(0.05)
    finally:
        reset_purger(timeout=0)

    def grown(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grown("strata_invalidations_total") >= 1
    assert grown("strata_purges_total", result="sent", **node) >= 1
    assert grown("strata_purges_total", result="failed", **node) >= 1
    assert grown("strata_purges_total", result="retried", **node) >= 1
    assert grown("strata_purge_duration_seconds_count", **node) >= 1
    assert after.value("strata_fence_owed", **node) == 1


def test_a_cache_that_fails_is_counted_and_its_circuit_shown_open(newsroom, settings):
    from newsroom.models import Article
    from tests.querycache.test_failures import closed_port, use_cache

    before = scrape()
    use_cache(settings, f"redis://127.0.0.1:{closed_port()}/0")
    assert Article.objects.get(slug="a2").title == "A2"  # from the database

    after = scrape()  # the page still answers while the cache is down

    cache = {"cache": "default"}
    assert after.value("strata_cache_errors_total", **cache) > before.value(
        "strata_cache_errors_total", **cache
    )
    assert after.value("strata_cache_circuit_open", **cache) == 1
    error = {"result": "error"}
    assert after.value("strata_query_cache_total", **error) > before.value(
        "strata_query_cache_total", **error
    )


def test_near_cache_lookups_and_size_show_where_there_is_one(newsroom):
    from strata.conf import strata_settings
    from strata.tags.stores import version_store

    if getattr(version_store(strata_settings().cache_alias), "near", None) is None:
        pytest.skip("no near cache on this backend (Django's Redis cache only)")
    before = scrape()

    for _ in range(2):
        Client().get("/articles/a1/")
    after = scrape()

    lookups = "strata_near_cache_lookups_total"
    assert after.total(lookups) > before.total(lookups)
    assert after.value("strata_near_cache_entries") >= 1
    assert after.value("strata_near_cache_bytes") > 0
