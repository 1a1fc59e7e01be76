"""Django app configuration for the newsroom."""

from django.apps import AppConfig


class NewsroomConfig(AppConfig):
    """Articles, authors, tags and comments of the demo site."""

    name = "newsroom"
    verbose_name = "Newsroom"
    default_auto_field = "django.db.models.BigAutoField"
