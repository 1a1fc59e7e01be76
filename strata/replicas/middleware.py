"""Read-your-own-writes across requests: a short-lived signed cookie after a write."""

from __future__ import annotations

import math
import time

from django.core import signing
from django.core.exceptions import MiddlewareNotUsed

from ..conf import strata_settings
from .router import Pin, _pin

__all__ = ["ReadYourWritesMiddleware", "COOKIE"]

COOKIE = "strata_primary"
_SALT = "strata.replicas.read-your-writes"


def _deadline(request) -> float | None:
    """The wall-clock time until which the request's cookie pins it to the primary."""
    value = request.COOKIES.get(COOKIE)
    if not value:
        return None
    try:
        deadline = float(signing.Signer(salt=_SALT).unsign(value))
    except (signing.BadSignature, ValueError):
        return None
    return deadline if deadline > time.time() else None


class ReadYourWritesMiddleware:
    """Pin a request that wrote, and its client for ``READ_YOUR_WRITES`` seconds, to the primary.

    Put it right after ``StrataMiddleware``. A response to a request that wrote carries
    the cookie ``strata_primary`` (signed, HttpOnly, expiring with the pin); requests that
    bring it back read from the primary until it expires. Without ``STRATA['REPLICAS']``
    the middleware removes itself.
    """

    def __init__(self, get_response):
        conf = strata_settings()
        if not conf.replicas:
            raise MiddlewareNotUsed("no STRATA['REPLICAS']")
        self.get_response = get_response
        self.window = conf.read_your_writes

    def __call__(self, request):
        deadline = _deadline(request)
        until = time.monotonic() + (deadline - time.time()) if deadline else 0.0
        pin = Pin(in_request=True, until=until)
        token = _pin.set(pin)
        try:
            response = self.get_response(request)
        finally:
            _pin.reset(token)
        if pin.wrote and self.window > 0:
            deadline = time.time() + self.window
            response.set_cookie(
                COOKIE,
                signing.Signer(salt=_SALT).sign(f"{deadline:.3f}"),
                max_age=math.ceil(self.window),
                httponly=True,
                samesite="Lax",
                secure=request.is_secure(),
            )
        return response
