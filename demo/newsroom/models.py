"""The newsroom's content: authors write articles, articles carry tags, readers comment."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

EXCERPT_LENGTH = 800


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
        return reverse("author_detail", args=[self.slug])


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
        return reverse("tag_detail", args=[self.slug])


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
        return reverse("article_detail", args=[self.slug])

    @property
    def excerpt(self) -> str:
        """The start of the body as one paragraph, cut at a word near ``EXCERPT_LENGTH``."""
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
