"""Strata's URLs: include them once, ``path("-/", include("strata.urls"))``."""

from django.urls import path

from .pages.holes import HOLE_URL_NAME, hole_view

urlpatterns = [path("hole/<str:token>/", hole_view, name=HOLE_URL_NAME)]
