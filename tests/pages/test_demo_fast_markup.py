"""The demo's cheaper URLs and dates make the markup Django's own tags and filters make."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.template import engines
from django.urls import reverse, set_script_prefix
from django.utils import translation

from newsroom.models import Article, Author, Tag, fixed_url, slug_url

MOMENTS = [
    datetime(2026, 12, 7, 9, 5, tzinfo=UTC),
    datetime(999, 1, 2, 23, 59, 30, 123456, tzinfo=UTC),
    datetime(2026, 3, 29, 0, 30, tzinfo=ZoneInfo("Europe/Paris")),
]


def render(source: str, **context) -> str:
    return engines["django"].from_string(source).render(context)


@pytest.mark.parametrize("zone", ["UTC", "America/St_Johns", "Asia/Kolkata"])
@pytest.mark.parametrize("language", ["en-us", "fr"])
def test_time_element_is_the_markup_of_two_date_filters(settings, zone, language):
    settings.TIME_ZONE = zone
    with translation.override(language):
        for moment in [*MOMENTS, None]:
            expected = render(
                "<time datetime=\"{{ t|date:'c' }}\">{{ t|date:'j M Y, H:i' }}</time>", t=moment
            )
            assert render("{% load newsroom %}{{ t|time_element }}", t=moment) == expected


@pytest.mark.parametrize(
    ("name", "slug"),
    [("article_detail", "a-story_2"), ("tag_detail", "politics"), ("author_detail", "ann")],
)
def test_a_slug_url_is_the_url_reverse_makes(name, slug):
    assert slug_url(name, slug) == reverse(name, args=[slug])


def test_a_slug_url_follows_the_script_prefix():
    try:
        set_script_prefix("/news/")
        assert slug_url("tag_detail", "politics") == "/news/tags/politics/"
    finally:
        set_script_prefix("/")
    assert slug_url("tag_detail", "politics") == "/tags/politics/"


def test_a_slug_the_converter_refuses_is_refused_as_reverse_refuses_it():
    from django.urls import NoReverseMatch

    with pytest.raises(NoReverseMatch):
        slug_url("tag_detail", "not a slug")


def test_models_link_to_their_pages():
    assert Tag(slug="politics").get_absolute_url() == reverse("tag_detail", args=["politics"])
    assert Author(slug="ann").get_absolute_url() == reverse("author_detail", args=["ann"])
    assert Article(slug="x-1").get_absolute_url() == reverse("article_detail", args=["x-1"])


def test_fixed_url_is_the_url_tag():
    for name in ("home", "login", "logout", "my_comments"):
        assert fixed_url(name) == reverse(name)
        assert render("{% load newsroom %}{% fixed_url '" + name + "' %}") == render(
            "{% url '" + name + "' %}"
        )


def test_the_excerpt_of_a_body_is_cut_as_from_the_whole_body():
    from newsroom.models import EXCERPT_LENGTH

    def whole(body: str) -> str:  # the definition, on the whole body
        text = " ".join(body.split())
        if len(text) <= EXCERPT_LENGTH:
            return text
        cut = text.rfind(" ", 0, EXCERPT_LENGTH)
        return text[: cut if cut > 0 else EXCERPT_LENGTH] + " …"

    bodies = [
        "short",
        "word " * 400,
        ("para one.\n\n" + "x" * 3000),
        (" \n" * 900) + "late start " * 100,  # whitespace first: the prefix is too short
        "a" * (2 * EXCERPT_LENGTH - 1) + " b" + " c" * 300,
        ("w" * 799 + " ") * 5,
    ]
    for body in bodies:
        assert Article(body=body).excerpt == whole(body)
