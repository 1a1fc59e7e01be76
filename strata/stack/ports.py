"""Ports for the stack's programs: below the ephemeral range, and checked before use."""

from __future__ import annotations

import contextlib
import socket

__all__ = ["port_is_free", "EPHEMERAL_START"]

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
