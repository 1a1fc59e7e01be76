"""Ports for the stack's programs: below the ephemeral range, and checked before use."""

from __future__ import annotations

import contextlib
import random
import socket

__all__ = ["free_port", "port_is_free", "EPHEMERAL_START"]

# Linux hands out outgoing ports from 32768 up; a listener there can collide with one.
EPHEMERAL_START = 32768


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return False
    return True


def free_port(taken: set[int] | None = None, host: str = "127.0.0.1") -> int:
    """A port free on ``host`` right now, below the ephemeral range and not in ``taken``
    (which it joins, so that ports picked before they are bound do not collide)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, EPHEMERAL_START)
        if (taken is None or port not in taken) and port_is_free(host, port):
            if taken is not None:
                taken.add(port)
            return port
    raise RuntimeError("no free port")
