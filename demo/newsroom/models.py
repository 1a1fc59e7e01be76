"""The newsroom's content: authors write articles, articles carry tags, readers comment."""

from __future__ import annotations

import re
from functools import lru_cache

from django.conf import settings
from django.db import models
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.translation import get_language

EXCERPT_LENGTH = 800

# What the ``slug`` path converter accepts; a URL is built by hand only for such a slug.
_SLUG = re.compile(r"[-a-zA-Z0-9_]+")
_PLACEHOLDER = "slug-placeholder"


# What a URL depends on besides its name and arguments (a prefix may be translated).
def _where() -> tuple[str | None, str, str | None]:
    return get_urlconf(), get_script_prefix(), get_language()


@lru_cache(maxsize=64)
def _reversed(name: str, urlconf: str | None, script_prefix: str, language: str | None) -> str:
    return reverse(name, urlconf=urlconf)


def fixed_url(name: str) -> str:
    """``reverse(name)`` for a URL without arguments, reversed once (see :func:`slug_url`)."""
    return _reversed(name, *_where())


@lru_cache(maxsize=64)
def _around_slug(
    name: str, urlconf: str | None, script_prefix: str, language: str | None
) -> tuple[str, str]:
    """What ``reverse(name, args=[slug])`` puts before and after the slug."""
    url = reverse(name, urlconf=urlconf, args=[_PLACEHOLDER])
    before, _, after = url.rpartition(_PLACEHOLDER)
    return before, after


def slug_url(name: str, slug: str) -> str:
    """``reverse(name, args=[slug])`` for a URL whose only argument is a slug, reversed once.

    A listing links every article, author and tag it shows: about 180 ``reverse()``
    calls on the home page, each a walk through the resolver's tables, a fifth of the
    time its templates took to render. The URL around the slug is the same for every
    object, so it is reversed once per URL name, URLconf, script prefix and language
    (each can change between requests, so each is part of the key), and a slug, which the
    ``slug`` converter lets through unquoted, is put in between.
    """
    if not _SLUG.fullmatch(slug):
        return reverse(name, args=[slug])  # the converter's error, or its quoting
    before, after = _around_slug(name, *_where())
    return before + slug + after


class Author(models.Model):
    """A writer of articles; may be linked to a user account, but need not be."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="author",
    )
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    bio = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        """The author's page."""
        return slug_url("author_detail", self.slug)


class Tag(models.Model):
    """A topic that groups articles."""

    name = models.CharField(max_length=50)
    slug = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        """The tag's page."""
        return slug_url("tag_detail", self.slug)


class Article(models.Model):
    """A published story."""

    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="articles")
    body = models.TextField(help_text="Paragraphs separated by blank lines.")
    # Every listing is ordered by this column, newest first; db_index=True is its index.
    published_at = models.DateTimeField(db_index=True)
    tags = models.ManyToManyField(Tag, related_name="articles", blank=True)

    class Meta:
        ordering = ["-published_at"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        """The article's page."""
        return slug_url("article_detail", self.slug)

    @property
    def excerpt(self) -> str:
        """The start of the body as one paragraph, cut at a word near ``EXCERPT_LENGTH``."""
        # Only the start of the body is normalised: the whitespace of a prefix collapses
        # to a prefix of the whole body's, and once that is longer than the excerpt the
        # cut below is the same. A whole body (3 KB in the demo) cost four times as much.
        text = " ".join(self.body[: 2 * EXCERPT_LENGTH].split())
        if len(text) <= EXCERPT_LENGTH:
            text = " ".join(self.body.split())
        if len(text) <= EXCERPT_LENGTH:
            return text
        cut = text.rfind(" ", 0, EXCERPT_LENGTH)
        return text[: cut if cut > 0 else EXCERPT_LENGTH] + " …"


class Comment(models.Model):
    """A reader's comment on an article."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="comments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comments"
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.user} on {self.article}"
