"""Strata's settings: one ``STRATA`` dict in Django settings, read once into one object.

=====================  =========  =========================================================
key                    default    meaning
=====================  =========  =========================================================
``HEALTH_PATH``        ``/-/health``  answered by :class:`strata.middleware.StrataMiddleware`
                                  before any other middleware, for load balancer probes
``EDGE_TTL``           ``10``     seconds a shared response may live in an accelerator
                                  (``s-maxage``) until tag purges land
``SERVER_NAME``        env ``STRATA_SERVER_NAME`` or the host name: names the app server
                                  process in the ``X-Strata-Server`` header
=====================  =========  =========================================================
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache

from django.conf import settings as django_settings

__all__ = ["StrataSettings", "strata_settings", "DEFAULTS"]

DEFAULTS = {
    "HEALTH_PATH": "/-/health",
    "EDGE_TTL": 10,
    "SERVER_NAME": None,
}


@dataclass(frozen=True)
class StrataSettings:
    """The validated values of the ``STRATA`` setting."""

    health_path: str
    edge_ttl: int
    server_name: str


@cache
def strata_settings() -> StrataSettings:
    """Read ``settings.STRATA`` once; system checks report what is wrong with it."""
    raw = {**DEFAULTS, **getattr(django_settings, "STRATA", {})}
    server_name = raw["SERVER_NAME"] or os.environ.get("STRATA_SERVER_NAME") or socket.gethostname()
    return StrataSettings(
        health_path=str(raw["HEALTH_PATH"]),
        edge_ttl=int(raw["EDGE_TTL"]),
        server_name=str(server_name),
    )
