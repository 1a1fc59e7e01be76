"""Ways into the running stack for the security tests: the public side, past Varnish, raw bytes."""

from __future__ import annotations

import re
import socket
import time
import uuid
from dataclasses import dataclass

from tests.helpers import Client

READER_PASSWORD = "newsroom"


def through_lb(stack) -> Client:
    """A client of the public address: HAProxy → Varnish → app pool → Django."""
    return Client(stack.config.host, stack.config.port)


def past_varnish(stack) -> Client:
    """A client of the app-server pool, the frontend only Varnish should use (no ESI)."""
    host = stack.config.host
    # The host name as Varnish forwards it (port stripped): the same page-cache key.
    return Client(host, stack.config.port_of("pool"), host_header=host)


def to_varnish(stack) -> Client:
    """A client of the accelerator's own port (where purges are sent)."""
    varnish = stack.accelerators[0]
    return Client(varnish.host, varnish.port)


def unique(name: str) -> str:
    """A query parameter that makes a URL cold in every cache layer."""
    return f"{name}={uuid.uuid4().hex}"


def is_shared_hit(answer) -> bool:
    """True when a shared layer answered from a stored copy (Varnish or the page cache)."""
    return answer.getheader("X-Cache") == "HIT" or answer.getheader("X-Strata") in (
        "page-hit",
        "page-stale",
    )


def cached_in_varnish(client: Client, path: str):
    """Request ``path`` until Varnish serves it from its shared copy; return that answer."""
    for _ in range(3):
        answer = client.get(path)
        if answer.getheader("X-Cache") == "HIT":
            return answer
    raise AssertionError(f"{path} never became a Varnish hit: {answer.getheaders()}")


def greeted(html: str) -> list[str]:
    """The user names the hello box greets in ``html``."""
    return re.findall(r'<span id="who">([^<]*)</span>', html)


def linked_paths(stack, kind: str) -> list[str]:
    """The ``/<kind>/<slug>/`` paths the home page links to (``articles``, ``tags``)."""
    home = past_varnish(stack).get("/")
    found = re.findall(rf'href="(/{kind}/[^"#?]+/)"', home.text)
    return list(dict.fromkeys(found))


@dataclass
class RawAnswer:
    """What came back on a raw connection: the bytes, and how it ended."""

    data: bytes
    closed: bool
    seconds: float

    @property
    def status(self) -> int | None:
        found = re.match(rb"HTTP/1\.[01] (\d{3})", self.data)
        return int(found.group(1)) if found else None


def raw_exchange(
    host: str,
    port: int,
    data: bytes,
    *,
    source: str | None = None,
    wait: float = 15.0,
    trickle: list[bytes] | None = None,
    trickle_every: float = 1.0,
) -> RawAnswer:
    """Send ``data`` (then ``trickle``, a piece every ``trickle_every`` s); read until close.

    Waits at most ``wait`` seconds in all. ``source`` binds the client to that local address.
    """
    started = time.monotonic()
    deadline = started + wait
    address = (source, 0) if source else None
    received = b""
    closed = False
    with socket.create_connection((host, port), timeout=wait, source_address=address) as sock:
        sock.sendall(data)
        pieces = list(trickle or [])
        while time.monotonic() < deadline:
            sock.settimeout(min(trickle_every if pieces else wait, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if pieces:
                    try:
                        sock.sendall(pieces.pop(0))
                    except OSError:
                        closed = True
                        break
                continue
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    return RawAnswer(received, closed, time.monotonic() - started)
