"""A stand-in for the stack on loopback: the response side of every tier's protocol.

One server plays all the addresses a benchmark uses. A request with ``X-Strata-Bench`` and
the right secret is a bench-mode request (``bypass: bench warm|cold`` with Server-Timing,
query count and slow queries); a request whose Host has no port came "past Varnish" and is
a page-cache hit; anything else is a Varnish hit; ``/missing/`` answers 404. With
``wrong_every=2`` every second response comes from the wrong tier (a miss), as when a
cache expires under load.
"""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW = [
    {"ms": 41.5, "sql": 'SELECT COUNT(*) FROM "newsroom_comment"'},
    {"ms": 3.2, "sql": "SELECT 1"},
]
HOME = b'<html><a href="/">Home</a> <a href="/articles/first-story/">First story</a></html>'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server: FakeStack = self.server
        every = server.wrong_every
        wrong = every and next(server.counter) % every == every - 1
        mode = self.headers.get("X-Strata-Bench")
        body = HOME if self.path == "/" else b"<html>article</html>"
        headers = {"Content-Type": "text/html", "Content-Length": str(len(body))}
        if mode in ("warm", "cold") and self.headers.get("X-Strata-Bench-Secret") == server.secret:
            headers["X-Strata"] = "page-miss" if wrong else f"bypass: bench {mode}"
            headers["Cache-Control"] = "private, no-store"
            headers["Server-Timing"] = server.server_timing
            headers["X-Strata-Queries"] = "4"
            headers["X-Strata-Slow-Queries"] = json.dumps(SLOW)
            headers["X-Strata-Timing-View"] = "newsroom.views.home"
        elif ":" not in self.headers.get("Host", ":"):
            headers["X-Strata"] = "page-miss" if wrong else "page-hit"
        else:
            headers["X-Strata"] = "page-hit"
            headers["X-Cache"] = "MISS" if wrong else "HIT"
        self.send_response(404 if self.path == "/missing/" else 200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class FakeStack(ThreadingHTTPServer):
    """Serve the tiers' protocol on 127.0.0.1 (a free port) until ``stop()``."""

    daemon_threads = True

    def __init__(self, secret: str = "s3cret", wrong_every: int = 0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.secret = secret
        self.wrong_every = wrong_every
        self.counter = itertools.count()
        self.server_timing = 'db;dur=60.0;desc="4 queries", cache;dur=5.0, tpl;dur=15.0, app;dur=20.0, total;dur=100.0'
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    def handle_error(self, request, client_address):
        pass  # load generators reset their connections when they stop

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
