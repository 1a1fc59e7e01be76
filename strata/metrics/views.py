"""``/-/metrics``: every metric in Prometheus's text format, for the people who run the site.

The same access rule as ``/-/timing/`` (:func:`strata.timing.views.may_see`): internal
addresses and staff only, 403 otherwise. Never stored anywhere (``private, no-store``).
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from ..timing.views import may_see
from . import sources  # noqa: F401 - registers the caches' counters with the tally
from .registry import MULTIPROC_ENV, tally
from .scrape import SharedState

__all__ = ["metrics", "exposition", "MULTIPROC_ENV"]


class _Default:
    """The default registry, as one collector of a registry built per scrape."""

    def collect(self):
        return REGISTRY.collect()


def exposition() -> bytes:
    """The metrics page's body: every process's values (multiprocess mode) or this one's,
    and the state read from the shared cache."""
    tally.flush()  # this process's last second too
    registry = CollectorRegistry()
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Default())
    registry.register(SharedState())
    return generate_latest(registry)


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition, for internal requests and staff only."""
    if not may_see(request):
        response = HttpResponse(b"Forbidden.\n", status=403, content_type="text/plain")
    else:
        response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    patch_cache_control(response, private=True, no_store=True)
    return response
