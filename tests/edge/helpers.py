"""A real varnishd with Strata's VCL in front of a tiny origin, for the edge tests.

The origin's pages carry the ``xkey`` tags named in their query string
(``/page?xkey=a+b``), live ``?ttl=N`` seconds (``s-maxage``, default 300), say how
often they were fetched (in the body and, as the app's word for that one request, in
``X-Strata``), are ``private`` while their path is in ``Origin.personal``, and answer 503
while ``Origin.failing`` is set (its health probe still answers). ``X-Cache`` tells
whether Varnish answered from its cache.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import socketserver
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from strata.stack.ports import free_port
from strata.stack.probes import http_get
from strata.stack.process import tail
from strata.stack.program import find_program
from strata.stack.varnish import Backend, Varnish, xkey_available
from tests.helpers import make_run_dir, remove_run_dir, skip_locally_fail_in_ci
from tests.helpers import poll as shared_poll

HOST = "edge.test"
SECRET = "edge-test-secret"
HEALTH_PATH = "/-/health"
LOOPBACK = "127.0.0.1"
# Varnish closes idle client connections after this many seconds (default 5): short, so
# that a test can see the purger reopen a connection the node closed.
IDLE_TIMEOUT = 1


def require_varnish() -> str:
    """The varnishd binary; skip locally, fail in CI, when it or xkey is missing."""
    binary = find_program("varnishd")
    missing = "varnishd" if binary is None else None if xkey_available() else "xkey"
    if missing:
        skip_locally_fail_in_ci(
            f"not installed: {missing} (scripts/bootstrap.sh installs varnish-modules)"
        )
    return binary


def poll(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """True as soon as ``condition()`` holds; False if it still does not after ``timeout``."""
    return bool(shared_poll(condition, timeout, every=0.02))


class Origin:
    """The app server behind Varnish: shared pages tagged from their query string."""

    def __init__(self, port: int):
        self.port = port
        self.fetches: Counter[str] = Counter()
        self.failing = False
        self.personal: set[str] = set()
        self._lock = threading.Lock()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == HEALTH_PATH:
                    self._answer(b"ok", {"Cache-Control": "no-store"})
                    return
                with origin._lock:
                    origin.fetches[self.path] += 1
                    count = origin.fetches[self.path]
                query = parse_qs(url.query)
                if origin.failing:
                    self._answer(b"origin down", {"Cache-Control": "no-store"}, status=503)
                    return
                tags = query.get("xkey", [""])[0]
                ttl = query.get("ttl", ["300"])[0]
                body = f"{url.path} fetch {count}".encode()
                if self.path in origin.personal:
                    cache_control = "private"
                else:
                    cache_control = f"public, s-maxage={ttl}"
                # Both tag headers, as Strata's pages send them (strata.edge.headers).
                headers = {"Cache-Control": cache_control, "xkey": tags, "Surrogate-Key": tags}
                self._answer(body, {**headers, "X-Strata": f"fetch {count}"})

            def _answer(self, body: bytes, headers: dict[str, str], status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Edge:
    """One running varnishd and its origin."""

    def __init__(self, port: int, origin: Origin):
        self.port = port
        self.origin = origin
        self.url = f"http://{LOOPBACK}:{port}"

    def get(self, path: str) -> tuple[str, str]:
        """X-Cache and body of ``path`` through Varnish (which must answer 200)."""
        status, cache, body = self.fetch(path)
        assert status == 200, (status, body[:200])
        return cache, body

    def fetch(self, path: str) -> tuple[int, str, str]:
        """Status, X-Cache and body of ``path`` through Varnish."""
        answer = http_get(LOOPBACK, self.port, path, headers={"Host": HOST})
        return answer.status, answer.headers.get("x-cache", ""), answer.body.decode()

    def cached(self, path: str) -> bool:
        return self.get(path)[0] == "HIT"


def wait_ready(process: subprocess.Popen, port: int, log_path: Path) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"varnishd exited with {process.returncode}:\n{tail(log_path)}")
        try:
            return http_get(LOOPBACK, port, "/-/varnish-health", timeout=1).status == 200
        except OSError:
            return False

    if not poll(ready, timeout=30):
        pytest.fail(f"varnishd did not become ready:\n{tail(log_path)}")


@contextlib.contextmanager
def running_edge(**varnish_options) -> Iterator[Edge]:
    """A varnishd with Strata's VCL (``varnish_options`` go to :class:`Varnish`) and its origin."""
    binary = require_varnish()
    run_dir = make_run_dir()
    taken: set[int] = set()
    origin = Origin(free_port(taken))
    origin.start()
    port = free_port(taken)
    varnish = Varnish(
        "varnish",
        run_dir,
        LOOPBACK,
        port,
        binary,
        backends=[Backend("origin", LOOPBACK, origin.port)],
        pool="haproxy",  # one backend, no director
        health_path=HEALTH_PATH,
        purge_secret=SECRET,
        purger_addresses=[LOOPBACK],
        allowed_hosts=[HOST],
        memory="32m",
        **varnish_options,
    )
    vcl = varnish.render_vcl()
    log_path = run_dir / "varnishd.log"
    argv = [
        binary,
        "-F",
        "-j",
        "none",
        "-n",
        str(run_dir / "varnish"),
        "-a",
        f"{LOOPBACK}:{port}",
        "-f",
        str(vcl),
        "-s",
        "malloc,32m",
        "-p",
        f"timeout_idle={IDLE_TIMEOUT}",
    ]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(process, port, log_path)
        yield Edge(port, origin)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)
        origin.stop()
        remove_run_dir(run_dir)


class Forwarder:
    """A TCP port that forwards every connection to ``target`` once :meth:`start` ran.

    Before that nothing listens on it: a node that is down, and later comes back.
    """

    def __init__(self, port: int, target: tuple[str, int]):
        self.port = port
        self.target = target
        self.server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> None:
        target = self.target

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with socket.create_connection(target, timeout=5) as upstream:
                    pumps = [
                        threading.Thread(target=_pump, args=(self.request, upstream), daemon=True),
                        threading.Thread(target=_pump, args=(upstream, self.request), daemon=True),
                    ]
                    for pump in pumps:
                        pump.start()
                    for pump in pumps:
                        pump.join(30)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer((LOOPBACK, self.port), Pipe)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
