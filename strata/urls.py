"""Strata's URLs: include them once, ``path("-/", include("strata.urls"))``.

``hole/<token>/`` serves personal holes; ``timing/`` the timing status page and
``metrics`` the Prometheus metrics (internal addresses and staff only,
:mod:`strata.timing.views`, :mod:`strata.metrics.views`).
"""

from django.urls import path

from .metrics.views import metrics
from .pages.holes import HOLE_URL_NAME, hole_view
from .timing.views import status as timing_status

TIMING_URL_NAME = "strata-timing"
METRICS_URL_NAME = "strata-metrics"

urlpatterns = [
    path("hole/<str:token>/", hole_view, name=HOLE_URL_NAME),
    path("timing/", timing_status, name=TIMING_URL_NAME),
    # No trailing slash: Prometheus's default metrics_path is /metrics.
    path("metrics", metrics, name=METRICS_URL_NAME),
]
