"""Who may purge or read the internals, and what the public side does with hostile requests.

Purges are for the app servers, on the accelerator's own port, with the shared secret,
from an address in Varnish's ``purgers`` ACL. From the public side PURGE and BAN are
refused by HAProxy. The timing page is for local addresses, which a client outside cannot
forge. Oversized and slow requests end in a 4xx or a closed connection, never in a 5xx or
a connection held open.
"""

from __future__ import annotations

import re
import subprocess
import threading

import pytest

from tests.helpers import Client
from tests.scenarios.security.helpers import (
    RawAnswer,
    cached_in_varnish,
    linked_paths,
    raw_exchange,
    through_lb,
    to_varnish,
    unique,
)

pytestmark = pytest.mark.stack


@pytest.fixture
def cached_page(stack):
    """A tag page in Varnish's shared copy, and the xkey that purges it."""
    slug = linked_paths(stack, "tags")[4].split("/")[2]
    path = f"/tags/{slug}/?{unique('purge')}"
    cached_in_varnish(through_lb(stack), path)
    return path, f"newsroom_tag.slug={slug}"


def still_cached(stack, path: str) -> bool:
    return through_lb(stack).get(path).getheader("X-Cache") == "HIT"


def tls_client(stack) -> Client:
    """A client of the public HTTPS port (HAProxy terminates TLS, self-signed)."""
    return Client(stack.config.host, stack.load_balancer.tls_port, tls=True)


@pytest.mark.parametrize("method", ["PURGE", "BAN"])
@pytest.mark.parametrize("with_secret", [False, True], ids=["without-secret", "with-secret"])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_purge_and_ban_from_the_public_side_are_refused(
    stack, cached_page, method, with_secret, scheme
):
    path, key = cached_page
    client = through_lb(stack) if scheme == "http" else tls_client(stack)
    headers = {"xkey-purge": key, "xkey": key}
    if with_secret:
        headers["X-Purge-Secret"] = stack.purge_secret
    answer = client.request(method, path, headers=headers)
    assert answer.status == 405
    assert still_cached(stack, path)


@pytest.mark.parametrize(
    "method, headers",
    [
        ("GET", {"X-HTTP-Method-Override": "PURGE"}),
        ("POST", {"X-HTTP-Method-Override": "PURGE"}),
        ("GET", {"X-Method-Override": "PURGE"}),
        ("purge", {}),  # methods are case-sensitive: this one is not PURGE
    ],
    ids=["get-override", "post-override", "x-method-override", "lower-case-purge"],
)
def test_a_disguised_purge_from_the_public_side_purges_nothing(stack, cached_page, method, headers):
    path, key = cached_page
    headers = {**headers, "xkey-purge": key, "X-Purge-Secret": stack.purge_secret}
    answer = through_lb(stack).request(method, path, headers=headers)
    assert answer.status < 500
    assert not answer.reason.startswith("Purged")
    assert still_cached(stack, path)


@pytest.mark.parametrize(
    "secret",
    [None, "", "wrong-secret-of-the-right-length", "SECRET"],
    ids=["no-secret-header", "empty-secret", "wrong-secret", "secret-upper-cased"],
)
def test_a_purge_to_varnish_without_the_right_secret_is_refused(stack, cached_page, secret):
    path, key = cached_page
    headers = {"xkey-purge": key}
    if secret is not None:
        headers["X-Purge-Secret"] = stack.purge_secret.swapcase() if secret == "SECRET" else secret
    answer = to_varnish(stack).request("PURGE", "/", headers=headers)
    assert answer.status == 403
    assert still_cached(stack, path)


def test_a_purge_to_varnish_with_the_secret_from_an_app_host_purges(stack, cached_page):
    path, key = cached_page
    answer = to_varnish(stack).request(
        "PURGE", "/", headers={"xkey-purge": key, "X-Purge-Secret": stack.purge_secret}
    )
    assert answer.status == 200
    assert int(re.match(r"Purged (\d+)", answer.reason).group(1)) >= 1
    assert through_lb(stack).get(path).getheader("X-Cache") == "MISS"


def test_a_ban_to_varnish_is_refused_even_with_the_secret(stack, cached_page):
    path, _ = cached_page
    answer = to_varnish(stack).request(
        "BAN", "/", headers={"X-Purge-Secret": stack.purge_secret, "X-Ban": "."}
    )
    assert answer.status == 405
    assert still_cached(stack, path)


def test_a_purge_with_the_secret_from_an_address_outside_the_acl_is_refused(stack, cached_page):
    path, key = cached_page
    varnish = stack.accelerators[0]
    request = (
        f"PURGE / HTTP/1.1\r\nHost: {varnish.host}\r\nxkey-purge: {key}\r\n"
        f"X-Purge-Secret: {stack.purge_secret}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        answer = raw_exchange(varnish.host, varnish.port, request, source="127.0.0.2", wait=10)
    except OSError as exc:  # no 127.0.0.2 on this machine's loopback
        pytest.skip(f"cannot send from 127.0.0.2: {exc}")
    assert answer.status == 403
    assert still_cached(stack, path)


def _request_with(header: str, size: int, path: str = "/") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}: {'x' * size}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


OVERSIZED = {
    "cookie-9kb": _request_with("Cookie", 9 * 1024),  # past Varnish's 8 KB header line
    "cookie-20kb": _request_with("Cookie", 20 * 1024),  # past HAProxy's 16 KB buffer
    "header-100kb": _request_with("X-Padding", 100 * 1024),
    "hundred-headers": (
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + "".join(f"X-Header-{i}: {i}\r\n" for i in range(100))
        + "Connection: close\r\n\r\n"
    ).encode(),
    "url-20kb": f"GET /?{'q' * 20000} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Connection: close\r\n\r\n".encode(),
}


# Large, but within what HAProxy and Varnish pass on: the app server decides (uWSGI takes
# 32 KB of headers, Gunicorn refuses a request line over 4 KB with a 414).
LARGE = {
    "session-cookie-8kb": (
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sessionid="
        + "x" * 8180
        + "\r\nConnection: close\r\n\r\n"
    ).encode(),
    "url-6kb": f"GET /?{unique('q')}&{'q' * 6000} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Connection: close\r\n\r\n".encode(),
}


@pytest.mark.parametrize("request_bytes", LARGE.values(), ids=LARGE.keys())
def test_a_large_request_the_edge_passes_on_is_answered_never_a_server_error(stack, request_bytes):
    answer = raw_exchange(stack.config.host, stack.config.port, request_bytes, wait=15)
    assert answer.status is not None, answer.data[:200]
    assert answer.status in (200, 400, 414, 431), answer.data[:300]
    assert answer.closed


@pytest.mark.parametrize("request_bytes", OVERSIZED.values(), ids=OVERSIZED.keys())
def test_an_oversized_request_gets_a_client_error_not_a_server_error(stack, request_bytes):
    answer = raw_exchange(stack.config.host, stack.config.port, request_bytes, wait=15)
    assert answer.status is not None, answer.data[:200]
    assert 400 <= answer.status < 500, answer.data[:300]
    assert answer.status in (400, 414, 431)
    assert answer.closed  # an answer, and the connection ended: nothing left hanging


def test_a_client_that_stalls_in_its_request_is_cut_by_the_load_balancer(stack):
    """HAProxy's ``timeout http-request`` (10 s) ends a request that never completes."""
    results: dict[str, RawAnswer] = {}
    host, port = stack.config.host, stack.config.port

    def half_a_request_line():
        results["stalled"] = raw_exchange(host, port, b"GET /?slow HTT", wait=15)

    def a_header_line_every_second():  # slowloris: always sending, never finishing
        trickle = [b"X-Slow: " + b"a" * i + b"\r\n" for i in range(1, 30)]
        results["trickled"] = raw_exchange(
            host, port, b"GET /?slow HTTP/1.1\r\nHost: 127.0.0.1\r\n", wait=15, trickle=trickle
        )

    threads = [
        threading.Thread(target=f) for f in (half_a_request_line, a_header_line_every_second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert set(results) == {"stalled", "trickled"}
    for name, answer in results.items():
        assert answer.closed, (name, answer)
        assert answer.status == 408, (name, answer.data[:200])


def outside_address() -> str | None:
    """A local address that is not loopback: a client 'from outside' on this machine."""
    try:
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "scope", "global"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except OSError:
        return None
    found = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    return found.group(1) if found else None


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "X-Forwarded-For: 127.0.0.1\r\n",
        "X-Forwarded-For: 127.0.0.1, 127.0.0.1\r\n",
        "Forwarded: for=127.0.0.1\r\n",
        "X-Real-IP: 127.0.0.1\r\n",
    ],
    ids=["plain", "x-forwarded-for", "x-forwarded-for-twice", "forwarded", "x-real-ip"],
)
def test_the_timing_page_is_refused_to_a_client_from_outside_even_with_forged_addresses(
    stack, forged
):
    source = outside_address()
    if source is None:
        pytest.skip("this machine has no non-loopback address to send from")
    request = (
        f"GET /-/timing/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{forged}Connection: close\r\n\r\n"
    ).encode()
    answer = raw_exchange(stack.config.host, stack.config.port, request, source=source)
    assert answer.status == 403, answer.data[:300]
    assert b"no-store" in answer.data.split(b"\r\n\r\n", 1)[0].lower()
    local = raw_exchange(stack.config.host, stack.config.port, request)
    assert local.status == 200  # the same request from the machine itself is allowed
