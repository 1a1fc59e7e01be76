"""Strata's URLs: include them once, ``path("-/", include("strata.urls"))``.

``hole/<token>/`` serves personal holes; ``timing/`` the timing status page (internal
addresses and staff only, :mod:`strata.timing.views`).
"""

from django.urls import path

from .pages.holes import HOLE_URL_NAME, hole_view
from .timing.views import status as timing_status

TIMING_URL_NAME = "strata-timing"

urlpatterns = [
    path("hole/<str:token>/", hole_view, name=HOLE_URL_NAME),
    path("timing/", timing_status, name=TIMING_URL_NAME),
]
