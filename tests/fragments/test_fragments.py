"""``{% cached %}`` blocks: served while the tags they were built from are current.

Every test builds "pages" the way a request does: inside a recorder, with the stores
deferred to the end of the page (``defer_stores``), on the real database and cache
(SQLite and the file cache by default). The query cache is off here, so that the number
of queries shows what the fragment cache did: a hit runs none.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import jinja2
import pytest
from django.db import connection, transaction
from django.template import Context, Engine, TemplateSyntaxError
from django.test.utils import CaptureQueriesContext
from django.utils import translation
from django.utils.safestring import mark_safe

from newsroom.models import Article, Comment, Tag
from strata.env import cache_from_url
from strata.fragments import (
    Fragment,
    forget_remembered,
    fragment_key,
    render_cached,
    reset_stats,
    stats,
    vary_token,
)
from strata.fragments.jinja2 import FragmentCacheExtension
from strata.querycache.monkey_patch import install
from strata.tags.naming import condition_tag, table_tag
from strata.tags.recorder import recording
from strata.tags.versions import defer_stores, flush_deferred_stores

COMMENTS = "{% for c in article.comments.all %}<p>{{ c.body }}</p>{% endfor %}"  # a query inside

DJANGO_TEMPLATES = {
    "comments.html": (
        "{% load strata_fragments %}<h1>{{ article.title }}</h1>\n"
        "{% cached article %}" + COMMENTS + "{% endcached %}"
    ),
    "title.html": "{% load strata_fragments %}{% cached article %}<h1>{{ article.title }}</h1>{% endcached %}",
    "nested.html": (
        "{% load strata_fragments %}{% cached article %}<h1>{{ article.title }}</h1>\n"
        "{% cached article %}" + COMMENTS + "{% endcached %}{% endcached %}"
    ),
    # The inner block has no vary: one sidebar shared by every article's page.
    "sidebar.html": (
        "{% load strata_fragments %}{% cached article %}<h1>{{ article.title }}</h1>\n"
        "{% cached %}<ul>{% for t in tags %}<li>{{ t.name }}</li>{% endfor %}</ul>"
        "{% endcached %}{% endcached %}"
    ),
    "language.html": (
        "{% load strata_fragments i18n %}"
        "{% cached %}{% get_current_language as lang %}[{{ lang }}]{% endcached %}"
    ),
    "no_timeout.html": (
        "{% load strata_fragments %}{% cached article timeout=0 %}" + COMMENTS + "{% endcached %}"
    ),
    "static.html": "{% load strata_fragments %}{% cached n %}n={{ n }}{% endcached %}",
}

JINJA_TEMPLATES = {
    "comments.html": (
        "<h1>{{ article.title }}</h1>\n{% cached article %}"
        "{% for c in article.comments.all() %}<p>{{ c.body }}</p>{% endfor %}{% endcached %}"
    ),
    "title.html": "{% cached article %}<h1>{{ article.title }}</h1>{% endcached %}",
    "nested.html": (
        "{% cached article, timeout=60 %}<h1>{{ article.title }}</h1>\n"
        "{% cached article, 'comments' %}"
        "{% for c in article.comments.all() %}<p>{{ c.body }}</p>{% endfor %}"
        "{% endcached %}{% endcached %}"
    ),
}


@cache
def django_engine() -> Engine:
    return Engine(
        libraries={
            "strata_fragments": "strata.fragments.django_tags",
            "i18n": "django.templatetags.i18n",
        },
        loaders=[("django.template.loaders.locmem.Loader", DJANGO_TEMPLATES)],
    )


@cache
def jinja_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.DictLoader(JINJA_TEMPLATES),
        extensions=[FragmentCacheExtension],
        autoescape=True,
    )


@pytest.fixture(autouse=True)
def fragment_cache_on(settings):
    """The fragment cache alone (no query cache, no page cache), from a clean slate."""
    install()  # the ORM hooks record every read's tags (no-op when already in place)
    settings.STRATA = {"FRAGMENT_CACHE": {"ENABLED": True, "TIMEOUT": 60}}
    reset_stats()
    forget_remembered()
    yield
    reset_stats()


@dataclass
class Page:
    html: str
    queries: int
    """Queries run while the template rendered (the context is fetched before)."""
    tags: set[str]
    cacheable: bool


def build_page(render: Callable[[dict], str], context: Callable[[], dict] = dict) -> Page:
    """Build a page as a request does: fetch its context, render, store at the end."""
    defer_stores()
    try:
        with recording() as recorder:
            values = context()
            with CaptureQueriesContext(connection) as queries:
                html = render(values)
    finally:
        flush_deferred_stores()
    return Page(str(html), len(queries), recorder.tags, recorder.cacheable)


def django(name: str) -> Callable[[dict], str]:
    return lambda values: django_engine().get_template(name).render(Context(values))


def jinja(name: str) -> Callable[[dict], str]:
    return lambda values: jinja_env().get_template(name).render(**values)


def article(pk: int, **more: Callable[[], object]) -> Callable[[], dict]:
    """The context a detail view builds: the article, read before the template renders.

    ``more`` makes further values afresh for each page (a QuerySet evaluated by an
    earlier page would answer from its own result cache, read outside this page).
    """
    return lambda: {"article": Article.objects.get(pk=pk)} | {k: f() for k, f in more.items()}


def comment(on, who, body: str = "new") -> None:
    Comment.objects.create(article=on, user=who, body=body)


# -- hits and invalidation --------------------------------------------------------------


def test_a_fragment_is_served_from_the_cache_on_the_second_render(newsroom):
    n = newsroom
    first = build_page(django("comments.html"), article(n.a1.pk))
    assert first.queries == 1 and stats["miss"] == 1 and stats["store"] == 1
    second = build_page(django("comments.html"), article(n.a1.pk))
    assert second.html == first.html
    assert second.queries == 0 and stats["hit"] == 1


def test_a_hit_records_the_fragments_tags_into_the_page(newsroom):
    n = newsroom
    first = build_page(django("comments.html"), article(n.a1.pk))
    second = build_page(django("comments.html"), article(n.a1.pk))
    assert second.queries == 0
    assert condition_tag("newsroom_comment", "article_id", n.a1.pk) in second.tags
    assert second.tags == first.tags


def test_a_comment_on_the_article_re_renders_its_fragment(newsroom):
    n = newsroom
    build_page(django("comments.html"), article(n.a1.pk))
    comment(n.a1, n.ann, "a new comment")
    again = build_page(django("comments.html"), article(n.a1.pk))
    assert "a new comment" in again.html
    assert again.queries == 1 and stats["miss"] == 2 and stats["hit"] == 0


def test_a_comment_on_another_article_keeps_the_fragment_cached(newsroom):
    n = newsroom
    first = build_page(django("comments.html"), article(n.a1.pk))
    comment(n.a2, n.ann)
    again = build_page(django("comments.html"), article(n.a1.pk))
    assert again.html == first.html and again.queries == 0 and stats["hit"] == 1


def test_markup_from_the_cache_is_not_escaped_twice(newsroom):
    n = newsroom
    comment(n.a3, n.ann, "<b>bold</b>")
    first = build_page(django("comments.html"), article(n.a3.pk))
    second = build_page(django("comments.html"), article(n.a3.pk))
    assert "<p>&lt;b&gt;bold&lt;/b&gt;</p>" in first.html
    assert second.html == first.html and stats["hit"] == 1


# -- what the page read before the block ------------------------------------------------


def test_a_fragment_showing_an_object_read_before_it_goes_when_that_row_changes(newsroom):
    n = newsroom
    first = build_page(django("title.html"), article(n.a1.pk))
    assert first.html == "<h1>A1</h1>" and first.queries == 0  # no query inside the block
    assert build_page(django("title.html"), article(n.a1.pk)).html == "<h1>A1</h1>"
    assert stats["hit"] == 1
    n.a1.title = "A1, revised"
    n.a1.save()
    again = build_page(django("title.html"), article(n.a1.pk))
    assert again.html == "<h1>A1, revised</h1>" and stats["miss"] == 2


def test_a_change_to_another_article_keeps_a_fragment_of_this_one_cached(newsroom):
    n = newsroom
    build_page(django("title.html"), article(n.a1.pk))
    n.a2.title = "A2, revised"
    n.a2.save()
    again = build_page(django("title.html"), article(n.a1.pk))
    assert again.html == "<h1>A1</h1>" and stats["hit"] == 1


# -- nesting (Russian doll) -------------------------------------------------------------


def test_a_parent_fragment_carries_its_childs_tags(newsroom):
    n = newsroom
    build_page(django("nested.html"), article(n.a1.pk))
    assert stats["miss"] == 2 and stats["store"] == 2
    second = build_page(django("nested.html"), article(n.a1.pk))
    # The parent answered alone (the child was not even looked at), yet the page
    # depends on the comments the child read.
    assert stats["hit"] == 1 and second.queries == 0
    assert condition_tag("newsroom_comment", "article_id", n.a1.pk) in second.tags


def test_changing_the_childs_data_re_renders_parent_and_child(newsroom):
    n = newsroom
    build_page(django("nested.html"), article(n.a1.pk))
    comment(n.a1, n.bob, "from the child")
    again = build_page(django("nested.html"), article(n.a1.pk))
    assert "from the child" in again.html
    assert stats["miss"] == 4 and stats["hit"] == 0


def test_a_parent_stored_while_its_child_was_a_hit_still_depends_on_the_child(newsroom):
    n = newsroom
    tags = {"tags": Tag.objects.all}  # lazy: read inside the inner block
    build_page(django("sidebar.html"), article(n.a1.pk, **tags))
    assert stats["miss"] == 2
    build_page(django("sidebar.html"), article(n.a2.pk, **tags))
    assert stats["miss"] == 3 and stats["hit"] == 1  # a new parent, the shared child
    warm = build_page(django("sidebar.html"), article(n.a2.pk, **tags))
    assert stats["hit"] == 2 and warm.queries == 0 and table_tag("newsroom_tag") in warm.tags
    Tag.objects.create(name="Z", slug="z")
    again = build_page(django("sidebar.html"), article(n.a2.pk, **tags))
    assert "<li>Z</li>" in again.html and "<h1>A2</h1>" in again.html


# -- keys -------------------------------------------------------------------------------


def test_different_vary_values_are_different_entries(newsroom):
    n = newsroom
    assert build_page(django("title.html"), article(n.a1.pk)).html == "<h1>A1</h1>"
    assert build_page(django("title.html"), article(n.a2.pk)).html == "<h1>A2</h1>"
    assert stats["miss"] == 2
    assert build_page(django("title.html"), article(n.a1.pk)).html == "<h1>A1</h1>"
    assert build_page(django("title.html"), article(n.a2.pk)).html == "<h1>A2</h1>"
    assert stats["hit"] == 2


def test_each_language_has_its_own_entry(newsroom):
    with translation.override("en"):
        assert build_page(django("language.html")).html == "[en]"
    with translation.override("fr"):
        assert build_page(django("language.html")).html == "[fr]"
    assert stats["miss"] == 2
    with translation.override("en"):
        assert build_page(django("language.html")).html == "[en]"
    assert stats["hit"] == 1


def test_editing_a_block_gives_it_new_keys(newsroom):
    # Same origin (a string template), same line, same vary: only the source differs.
    before = django_engine().from_string(
        "{% load strata_fragments %}{% cached %}old{% endcached %}"
    )
    after = django_engine().from_string("{% load strata_fragments %}{% cached %}new{% endcached %}")
    assert build_page(lambda values: before.render(Context(values))).html == "old"
    assert build_page(lambda values: after.render(Context(values))).html == "new"


def test_vary_values_are_named_by_identity_not_by_object():
    assert vary_token(Article(pk=5)) == vary_token(Article(pk=5, title="other"))
    assert vary_token(Article(pk=5)) != vary_token(Comment(pk=5))
    assert vary_token("x") == vary_token(mark_safe("x"))
    assert len({vary_token(1), vary_token("1"), vary_token(True), vary_token(1.0)}) == 4
    assert vary_token([1, "a"]) == vary_token([1, "a"]) != vary_token((1, "a"))
    assert vary_token({"b": 1, "a": 2}) == vary_token({"a": 2, "b": 1})


def test_values_without_a_stable_identity_make_no_key():
    fragment = Fragment("page.html", 3)
    assert vary_token(Article(title="unsaved")) is None
    assert vary_token(object()) is None
    assert vary_token([1, object()]) is None
    assert fragment_key(fragment, [object()], "en") is None
    assert fragment_key(fragment, [1], "en") != fragment_key(fragment, [1], "fr")
    assert fragment_key(fragment, [1], "en").startswith("strata:f:")


def test_a_fragment_varying_on_an_unsaved_object_renders_uncached(newsroom):
    draft = lambda: {"article": Article(title="Draft")}  # noqa: E731
    for _ in range(2):
        assert build_page(django("title.html"), draft).html == "<h1>Draft</h1>"
    assert stats["bypass:unstable vary"] == 2 and stats["store"] == 0


# -- when nothing is stored -------------------------------------------------------------


def test_outside_any_recorder_a_fragment_is_rendered_and_not_stored(newsroom):
    n = newsroom
    template = django_engine().get_template("comments.html")
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            html = template.render(Context({"article": n.a1}))
        assert len(queries) == 1 and "<p>c</p>" in html
    assert stats["store"] == 0 and stats["bypass:no recorder"] == 2
    build_page(django("comments.html"), article(n.a1.pk))
    assert stats["miss"] == 1  # nothing had been stored


def test_a_page_that_read_around_the_cache_stores_no_fragment(newsroom):
    n = newsroom

    def context():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # a raw read: its tags are unknown
        return {"article": Article.objects.get(pk=n.a1.pk)}

    page = build_page(django("comments.html"), context)
    assert not page.cacheable and stats["bypass:page uncacheable"] == 1
    build_page(django("comments.html"), article(n.a1.pk))
    assert stats["miss"] == 1 and stats["hit"] == 0


def test_a_fragment_that_read_around_the_cache_is_not_stored(newsroom):
    def render():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "raw"

    for _ in range(2):
        assert build_page(lambda values: render_cached(Fragment("t", 1), [], render)).html == "raw"
    assert stats["miss"] == 2 and stats["store"] == 0


def test_a_timeout_of_zero_stores_nothing(newsroom):
    n = newsroom
    for _ in range(2):
        assert build_page(django("no_timeout.html"), article(n.a1.pk)).queries == 1
    assert stats["store"] == 0


def test_with_the_fragment_cache_off_blocks_render_every_time(newsroom, settings):
    n = newsroom
    settings.STRATA = {}
    for _ in range(2):
        assert build_page(django("comments.html"), article(n.a1.pk)).queries == 1
    assert not stats


def test_a_writer_sees_its_own_write_inside_its_transaction(newsroom):
    n = newsroom
    build_page(django("comments.html"), article(n.a1.pk))
    with transaction.atomic():
        comment(n.a1, n.ann, "mine, not yet committed")
        page = build_page(django("comments.html"), article(n.a1.pk))
        assert "mine, not yet committed" in page.html
    assert "mine, not yet committed" in build_page(django("comments.html"), article(n.a1.pk)).html


def test_a_cache_server_that_is_down_means_rendering_uncached(newsroom, settings):
    n = newsroom
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nobody listens
    settings.CACHES = {**settings.CACHES, "default": cache_from_url(f"redis://127.0.0.1:{port}/0")}
    static = build_page(django("static.html"), lambda: {"n": 7})
    assert static.html == "n=7" and stats["bypass:cache unavailable"] == 1
    page = build_page(django("comments.html"), article(n.a1.pk))
    assert page.html.count("<p>c</p>") == 2 and stats["hit"] == 0


def test_a_hit_is_checked_against_the_stored_tags_even_when_this_process_forgot_them(
    newsroom,
):
    n = newsroom
    build_page(django("comments.html"), article(n.a1.pk))
    forget_remembered()  # another process, or an evicted memo: two round trips
    assert build_page(django("comments.html"), article(n.a1.pk)).queries == 0
    comment(n.a1, n.ann, "after")
    forget_remembered()
    assert "after" in build_page(django("comments.html"), article(n.a1.pk)).html


def test_the_tag_rejects_a_second_timeout():
    with pytest.raises(TemplateSyntaxError):
        django_engine().from_string(
            "{% load strata_fragments %}{% cached timeout=1 timeout=2 %}{% endcached %}"
        )


# -- Jinja2 -----------------------------------------------------------------------------


def test_jinja2_a_fragment_is_served_from_the_cache_on_the_second_render(newsroom):
    n = newsroom
    first = build_page(jinja("comments.html"), article(n.a1.pk))
    assert first.queries == 1 and first.html.count("<p>c</p>") == 2
    second = build_page(jinja("comments.html"), article(n.a1.pk))
    assert second.html == first.html and second.queries == 0 and stats["hit"] == 1


def test_jinja2_a_comment_on_the_article_re_renders_its_fragment(newsroom):
    n = newsroom
    build_page(jinja("comments.html"), article(n.a1.pk))
    comment(n.a1, n.ann, "<i>new</i>")
    again = build_page(jinja("comments.html"), article(n.a1.pk))
    assert "<p>&lt;i&gt;new&lt;/i&gt;</p>" in again.html and stats["miss"] == 2
    comment(n.a2, n.ann)
    assert build_page(jinja("comments.html"), article(n.a1.pk)).html == again.html
    assert stats["hit"] == 1


def test_jinja2_a_fragment_showing_an_object_read_before_it_goes_when_it_changes(newsroom):
    n = newsroom
    assert build_page(jinja("title.html"), article(n.a1.pk)).html == "<h1>A1</h1>"
    n.a1.title = "A1, revised"
    n.a1.save()
    assert build_page(jinja("title.html"), article(n.a1.pk)).html == "<h1>A1, revised</h1>"
    assert stats["miss"] == 2 and stats["hit"] == 0


def test_jinja2_nested_fragments_pass_the_childs_tags_up(newsroom):
    n = newsroom
    build_page(jinja("nested.html"), article(n.a1.pk))
    second = build_page(jinja("nested.html"), article(n.a1.pk))
    assert stats["miss"] == 2 and stats["hit"] == 1 and second.queries == 0
    assert condition_tag("newsroom_comment", "article_id", n.a1.pk) in second.tags
    comment(n.a1, n.bob, "from the child")
    again = build_page(jinja("nested.html"), article(n.a1.pk))
    assert "from the child" in again.html and stats["miss"] == 4


def test_jinja2_rejects_a_second_timeout():
    with pytest.raises(jinja2.TemplateSyntaxError):
        jinja_env().from_string("{% cached timeout=1, timeout=2 %}{% endcached %}")
