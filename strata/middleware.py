"""``StrataMiddleware``: place it first in ``MIDDLEWARE``.

It answers the load balancer's health probe before any other middleware runs, names the
app server process that rendered each response (``X-Strata-Server``), and marks each
response shared or personal for the accelerator (``Cache-Control``, ``X-Strata``).
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse

from .conf import strata_settings
from .edge.policy import apply_edge_cache_control

__all__ = ["StrataMiddleware"]


class StrataMiddleware:
    """Health probe, app-server name and edge cache headers for every response."""

    def __init__(self, get_response):
        self.get_response = get_response
        conf = strata_settings()
        self.health_path = conf.health_path
        self.edge_ttl = conf.edge_ttl
        # Read per process, after the app server forked its workers.
        self.server_header = f"{conf.server_name} pid={os.getpid()}"

    def __call__(self, request: HttpRequest):
        if request.path_info == self.health_path:
            response = HttpResponse(b"ok\n", content_type="text/plain")
            response["Cache-Control"] = "no-store"
        else:
            response = self.get_response(request)
            reason = apply_edge_cache_control(request, response, self.edge_ttl)
            if reason is not None:
                response["X-Strata"] = f"bypass: {reason}"
        response["X-Strata-Server"] = self.server_header
        return response
