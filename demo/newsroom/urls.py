"""The newsroom's pages."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("articles/<slug:slug>/", views.article_detail, name="article_detail"),
    path("tags/<slug:slug>/", views.tag_detail, name="tag_detail"),
    path("authors/<slug:slug>/", views.author_detail, name="author_detail"),
    path("me/comments/", views.my_comments, name="my_comments"),
]
