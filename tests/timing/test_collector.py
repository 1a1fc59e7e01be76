"""The collector: sections that never overlap, calls counted once, the slowest SQL kept.

Exact figures come from a fake clock that moves only inside the code under test, so
nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.db import connection
from django.template import Context, Engine

from strata.conf import strata_settings
from strata.tags.stores import version_store
from strata.timing import collector, timed
from strata.timing.collector import CACHE, DB, TEMPLATE
from tests.timing.clock import clock


@pytest.fixture
def fake_clock(monkeypatch):
    monkeypatch.setattr(collector, "perf_counter", clock)
    return clock


def engine(**templates: str) -> Engine:
    return Engine(
        loaders=[("django.template.loaders.locmem.Loader", templates)],
        libraries={"clock": "tests.timing.clock"},
    )


def test_the_sections_never_overlap_and_add_up_to_the_total(fake_clock):
    with timed() as timing:
        fake_clock.advance(1)  # app
        timing.enter(TEMPLATE)
        fake_clock.advance(5)
        timing.enter(DB)  # a lazy QuerySet evaluated by the template
        fake_clock.advance(3)
        timing.leave()
        fake_clock.advance(2)
        timing.enter(CACHE)  # a {% cached %} lookup
        fake_clock.advance(4)
        timing.leave()
        timing.leave()
        fake_clock.advance(10)  # app

    assert timing.spent == [3, 4, 7]
    assert timing.app == 11
    assert timing.total == 25
    assert timing.calls == [1, 1, 1]


def test_a_template_that_includes_another_is_one_template(fake_clock):
    templates = engine(
        **{
            "page.html": "{% load clock %}{{ 1|tick }}{% include 'box.html' %}"
            "{% include 'box.html' %}",
            "box.html": "{% load clock %}{{ 10|tick }}",
        }
    )
    page = templates.get_template("page.html")

    with timed() as timing:
        page.render(Context())

    assert timing.spent[TEMPLATE] == 21
    assert timing.total == 21
    assert timing.calls[TEMPLATE] == 1


def test_the_version_store_calling_djangos_cache_is_one_cache_call(newsroom):
    store = version_store(strata_settings().cache_alias)

    with timed() as timing:
        store.get_with(["newsroom_article"], ["some-key"])
        store.bump(["newsroom_article", "newsroom_comment"])

    assert timing.calls[CACHE] == 2


def test_every_call_to_the_sites_cache_counts_once(newsroom):
    cache = caches["default"]

    with timed() as timing:
        cache.set("k", 1)
        cache.get_or_set("k2", 2)  # a get and an add inside: one call
        cache.get_many(["k", "k2"])
        cache.incr("k")

    assert timing.calls[CACHE] == 4
    assert timing.spent[CACHE] > 0


def test_statements_are_counted_and_the_slowest_kept_without_parameters(newsroom):
    from newsroom.models import Article

    with timed(slow_limit=2) as timing:
        list(Article.objects.filter(slug="a-secret-slug"))
        Article.objects.count()
        Article.objects.filter(title__startswith="A").exists()

    assert timing.queries == 3
    assert timing.spent[DB] > 0
    kept = timing.slowest()
    assert len(kept) == 2
    assert kept[0][0] >= kept[1][0]
    assert all("a-secret-slug" not in str(sql) for _, sql in timing.slow)


def test_nothing_is_timed_outside_a_request(newsroom):
    from newsroom.models import Article

    assert collector.current() is None
    Article.objects.count()  # the hooks run and find no collector
    caches["default"].get("k")


def test_the_database_hook_leaves_other_execute_wrappers_alone(newsroom):
    from newsroom.models import Article

    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    connection.close()  # the connection opens inside the block below
    with connection.execute_wrapper(wrapper), timed() as timing:
        Article.objects.count()

    assert seen and timing.queries == 1
    assert connection.execute_wrappers == []  # the project's list holds only its own


def test_the_query_cache_hooks_still_run_under_timing(newsroom):
    from newsroom.models import Article
    from strata.querycache.stats import stats
    from tests.querycache.conftest import probe

    with timed() as timing:
        assert probe(lambda: list(Article.objects.filter(slug="a1"))) == "miss"
        assert probe(lambda: list(Article.objects.filter(slug="a1"))) == "hit"
        with connection.cursor() as cursor:  # raw SQL: still seen by the query cache
            cursor.execute("UPDATE newsroom_article SET title = title WHERE slug = 'a2'")

    assert stats["invalidate"] >= 1
    assert timing.queries == 2  # the miss and the UPDATE; the hit asked the cache
