"""The rendered files pass the real programs' own checks, and the VCL's purge path works.

``haproxy -c`` accepts every load balancer's config and ``varnishd -C`` compiles the VCL,
in every topology an inventory can ask for; a real varnishd with the rendered VCL takes
purges only on its purge listener, only with the secret from its file. These tests skip
locally, and fail in CI, when haproxy or varnishd (with xkey) is missing.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time

import pytest

from strata.config.render import PURGE_SECRET_FILE
from strata.config.verify import check_haproxy, check_output, check_vcl
from strata.stack.ports import EPHEMERAL_START, port_is_free
from strata.stack.probes import http_get

from .tools import ONE_HOST, example_text, render_text, require_program

VARIANTS = {
    "example": lambda text: text,
    "roundrobin, no PROXY, no TLS": lambda text: (
        text.replace('balance = "uri-consistent"', 'balance = "roundrobin"')
        .replace("proxy_protocol = true", "proxy_protocol = false")
        .replace('tls = "/etc/haproxy/certs/news.example.com.pem"', "tls = false")
    ),
    "Varnish balances the app servers": lambda text: text.replace(
        'app_pool = "haproxy"', 'app_pool = "varnish"'
    ),
    "self-signed TLS": lambda text: text.replace(
        'tls = "/etc/haproxy/certs/news.example.com.pem"', 'tls = "self-signed"'
    ),
    "one load balancer": lambda text: text.replace('[[load_balancer]]\nhost = "lb2"\n', "").replace(
        'lb2 = "10.0.1.2"\n', ""
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_haproxy_accepts_every_load_balancer_config(tmp_path, variant):
    binary = require_program("haproxy")
    _, report = render_text(VARIANTS[variant](example_text()), tmp_path / "out")
    configs = sorted((tmp_path / "out/hosts").glob("*/etc/haproxy/haproxy.cfg"))
    assert configs
    for config in configs:
        result = check_haproxy(config, binary)
        assert result.ok, result.message


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_varnishd_compiles_the_vcl(tmp_path, variant):
    binary = require_program("varnishd")
    render_text(VARIANTS[variant](example_text()), tmp_path / "out")
    vcls = {p.read_text(): p for p in (tmp_path / "out/hosts").glob("*/etc/varnish/strata.vcl")}
    assert len(vcls) == 1
    result = check_vcl(next(iter(vcls.values())), binary)
    assert result.ok, result.message


def test_a_vcl_that_does_not_compile_fails_with_the_compilers_words(tmp_path):
    binary = require_program("varnishd")
    render_text(example_text(), tmp_path / "out")
    vcl = tmp_path / "out/hosts/varnish1/etc/varnish/strata.vcl"
    vcl.write_text(vcl.read_text().replace("return (hash);", "return (hash)"))
    result = check_vcl(vcl, binary)
    assert result.ok is False
    assert "Expected ';'" in result.message


def test_every_check_of_the_example_passes(tmp_path):
    require_program("haproxy")
    require_program("varnishd")
    _, report = render_text(example_text(), tmp_path / "out")
    results = check_output(report.files)
    assert {r.tool for r in results} >= {"haproxy -c", "varnishd -C", "python -m py_compile"}
    assert [r for r in results if r.ok is False] == []


def _free_port(taken: set[int]) -> int:
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, EPHEMERAL_START)
        if port not in taken and port_is_free("127.0.0.1", port):
            taken.add(port)
            return port
    raise RuntimeError("no free port")


def _purge(port: int, secret: str, proxy_line: bytes = b"") -> int:
    """Send a PURGE (after a PROXY v1 line, if given); return the status code."""
    request = (
        f"PURGE / HTTP/1.1\r\nHost: localhost\r\nxkey-purge: some-tag\r\n"
        f"X-Purge-Secret: {secret}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(proxy_line + request)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def proxy_varnish(tmp_path):
    """varnishd with the VCL of a one-host inventory with PROXY v2 (secret file in tmp)."""
    binary = require_program("varnishd")
    taken: set[int] = set()
    public, purge = _free_port(taken), _free_port(taken)
    text = ONE_HOST.replace("port = 20080", f"port = {public}\npurge_port = {purge}")
    text += "\n[traffic]\nproxy_protocol = true\n"
    render_text(text, tmp_path / "out")
    secret_file = tmp_path / "purge-secret"
    vcl = tmp_path / "strata.vcl"
    vcl.write_text(
        (tmp_path / "out/hosts/web/etc/varnish/strata.vcl")
        .read_text()
        .replace(PURGE_SECRET_FILE, str(secret_file))
    )
    log = tmp_path / "varnishd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "-F",
                "-j",
                "none",
                "-n",
                str(tmp_path / "n"),
                "-a",
                f"public=127.0.0.1:{public},PROXY",
                "-a",
                f"purge=127.0.0.1:{purge}",
                "-f",
                str(vcl),
                "-s",
                "malloc,16m",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                if http_get("127.0.0.1", purge, "/-/varnish-health", timeout=1).status == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"varnishd did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield public, purge, secret_file
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_purges_need_the_purge_listener_and_the_secret_from_the_file(proxy_varnish):
    public, purge, secret_file = proxy_varnish
    secret = "a-purge-secret-of-32-characters-"
    # No file yet: nothing matches, not even an empty or absent header.
    assert _purge(purge, secret) == 403
    assert _purge(purge, "") == 403
    secret_file.write_text(secret + "\n")
    assert _purge(purge, secret) == 200
    assert _purge(purge, secret[:-1] + "x") == 403
    # Through the load balancer's PROXY listener a purge is refused, secret or not.
    proxy_line = b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 %d\r\n" % public
    assert _purge(public, secret, proxy_line) == 403
