"""The newsroom in Django's admin; large lists use raw ID fields instead of selects."""

from django.contrib import admin

from .models import Article, Author, Comment, Tag


@admin.register(Author)
class AuthorAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "user"]
    search_fields = ["name", "slug", "user__username"]
    list_filter = [("user", admin.EmptyFieldListFilter)]
    prepopulated_fields = {"slug": ["name"]}
    raw_id_fields = ["user"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "author", "published_at"]
    list_select_related = ["author"]
    search_fields = ["title", "slug", "author__name"]
    list_filter = ["published_at", "tags"]
    date_hierarchy = "published_at"
    prepopulated_fields = {"slug": ["title"]}
    raw_id_fields = ["author"]
    filter_horizontal = ["tags"]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["article", "user", "created_at"]
    list_select_related = ["article", "user"]
    search_fields = ["body", "user__username", "article__title"]
    list_filter = ["created_at"]
    date_hierarchy = "created_at"
    raw_id_fields = ["article", "user"]
