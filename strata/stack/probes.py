"""Small, dependency-free health probes: a line protocol over TCP, and an HTTP GET."""

from __future__ import annotations

import http.client
import socket

__all__ = ["line_probe", "http_get", "HttpAnswer"]


def line_probe(host: str, port: int, command: bytes, expect: bytes, timeout: float = 1.0) -> bool:
    """Send ``command`` and return True when the answer starts with ``expect``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(command)
            return sock.recv(256).startswith(expect)
    except OSError:
        return False


class HttpAnswer:
    """Status, headers (lower-cased names) and body of one HTTP response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<HttpAnswer {self.status} {len(self.body)} bytes>"


def http_get(
    host: str,
    port: int,
    path: str = "/",
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    method: str = "GET",
) -> HttpAnswer:
    """One HTTP/1.1 request on a fresh connection; raises ``OSError`` when it fails."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return HttpAnswer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from exc
    finally:
        conn.close()
