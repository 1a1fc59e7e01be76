"""The rendered files pass the real programs' own checks, and the VCL's purge path works.

``haproxy -c`` accepts every load balancer's config and ``varnishd -C`` compiles the VCL,
in every topology an inventory can ask for; a real varnishd with the rendered VCL takes
purges only on its purge listener, only with the secret from its file. These tests skip
locally, and fail in CI, when haproxy or varnishd (with xkey) is missing.
"""

from __future__ import annotations

import contextlib
import socket
import stat
import subprocess
import time

import pytest
import redis

from strata.config.render import PURGE_SECRET_FILE, REDIS_AUTH_FILE, SENTINEL_AUTH_FILE
from strata.config.verify import check_haproxy, check_output, check_vcl
from strata.stack.ports import free_port
from strata.stack.probes import http_get
from tests.config.helpers import ONE_HOST, example_text, render_text, require_program

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
    public, purge = free_port(taken), free_port(taken)
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


def _start(argv: list[str], log, port: int, name: str) -> subprocess.Popen:
    """Start ``argv`` (output to ``log``) and wait until ``port`` on 127.0.0.1 answers."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 15
    while not _accepts(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=10)
            pytest.fail(f"{name} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    return process


def _accepts(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:``port``."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def _adapt(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each production value replaced once: a missing one fails the test."""
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{old!r} is not once in the rendered file"
        text = text.replace(old, new)
    return text


def _write_auth_file(rendering, host: str, production_path: str, path, out) -> None:
    """Run the README's command for ``host`` with ``path`` for ``production_path``."""
    step = next(
        s for e in rendering.hosts if e.host.name == host for s in e.steps if production_path in s
    )
    command = step.rsplit(": `", 1)[1].rstrip("`")
    # Not root here: the file stays ours, with the README's mode.
    command = command.replace("-o redis -g redis ", "").replace(production_path, str(path))
    subprocess.run(["sh", "-c", command], cwd=out, check=True, timeout=30)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def _inline(port: int, *commands: str) -> list[str]:
    """Send inline commands on one connection; the first line of each answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        answers = []
        for command in commands:
            sock.sendall(command.encode() + b"\r\n")
            answers.append(reader.readline().decode().rstrip("\r\n"))
        return answers


@pytest.fixture
def rendered_redis(tmp_path):
    """redis-server from the example's rendered redis.conf (cache1, the primary) and the
    auth file its README step writes; on 127.0.0.1 and a free port, stopped by PID.

    Yields (port, password, rendering, out, tmp_path, the ports taken).
    """
    binary = require_program("redis-server")
    out = tmp_path / "out"
    rendering, report = render_text(example_text(), out)
    password = next(
        line.split("=", 1)[1]
        for line in report.secrets_path.read_text().splitlines()
        if line.startswith("STRATA_REDIS_PASSWORD=")
    )
    taken: set[int] = set()
    port = free_port(taken)
    auth = tmp_path / "strata-auth.conf"
    _write_auth_file(rendering, "cache1", REDIS_AUTH_FILE, auth, out)
    assert auth.read_text() == f"requirepass {password}\nmasterauth {password}\n"
    data = tmp_path / "redis"
    data.mkdir()
    config = tmp_path / "redis.conf"
    config.write_text(
        _adapt(
            (out / "hosts/cache1/etc/redis/redis.conf").read_text(),
            {
                "bind 10.0.4.1\n": "bind 127.0.0.1\n",
                "port 6379\n": f"port {port}\n",
                "dir /var/lib/redis\n": f"dir {data}\n",
                "pidfile /run/redis/redis-server.pid\n": f"pidfile {data}/redis.pid\n",
                f"include {REDIS_AUTH_FILE}\n": f"include {auth}\n",
            },
        )
    )
    process = _start([binary, str(config)], tmp_path / "redis.log", port, "redis-server")
    try:
        yield port, password, rendering, out, tmp_path, taken
    finally:
        _stop(process)


def test_the_rendered_redis_refuses_a_client_without_the_password_from_secrets_env(
    rendered_redis,
):
    port, password, *_ = rendered_redis
    assert _inline(port, "PING") == ["-NOAUTH Authentication required."]
    assert _inline(port, "AUTH not-the-password")[0].startswith("-WRONGPASS")
    assert _inline(port, f"AUTH {password}", "PING") == ["+OK", "+PONG"]
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    try:
        # Protected mode stays on: with a password it refuses no one who has it.
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        assert client.config_get("masterauth") == {"masterauth": password}
    finally:
        client.close()


def test_the_rendered_sentinel_authenticates_to_the_primary(rendered_redis):
    port, password, rendering, out, tmp_path, taken = rendered_redis
    binary = require_program("redis-server")
    sentinel_port = free_port(taken)
    auth = tmp_path / "strata-sentinel-auth.conf"
    _write_auth_file(rendering, "lb1", SENTINEL_AUTH_FILE, auth, out)
    assert auth.read_text() == f"sentinel auth-pass strata {password}\n"
    data = tmp_path / "sentinel"
    data.mkdir()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        _adapt(
            (out / "hosts/lb1/etc/redis/sentinel.conf").read_text(),
            {
                "port 26379\n": f"port {sentinel_port}\n",
                "bind 10.0.1.1\n": "bind 127.0.0.1\n",
                "pidfile /run/sentinel/redis-sentinel.pid\n": f"pidfile {data}/pid\n",
                "dir /var/lib/redis\n": f"dir {data}\n",
                "monitor strata 10.0.4.1 6379 ": f"monitor strata 127.0.0.1 {port} ",
                f"include {SENTINEL_AUTH_FILE}\n": f"include {auth}\n",
            },
        )
    )
    process = _start(
        [binary, str(config), "--sentinel"], tmp_path / "sentinel.log", sentinel_port, "Sentinel"
    )
    sentinel = redis.Redis(host="127.0.0.1", port=sentinel_port, decode_responses=True)
    primary = redis.Redis(host="127.0.0.1", port=port, password=password, decode_responses=True)
    try:
        run_id = primary.info("server")["run_id"]
        # Sentinel learns the primary's run id from INFO, which needs the password.
        deadline = time.monotonic() + 10
        while (state := sentinel.sentinel_master("strata")).get("runid") != run_id:
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert "disconnected" not in state["flags"] and not state["is_sdown"]
    finally:
        sentinel.close()
        primary.close()
        _stop(process)
