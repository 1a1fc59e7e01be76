"""The app-server peers that ``page_cache_peers.py`` and ``peers.py`` both measure.

The demo's stack, each peer (Django's cache, a bare WSGI app) as a Gunicorn beside the
stack's own app server, the checks that a peer serves hits before wrk measures it, and
the CPU that each process used.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
from contextlib import suppress
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

import psycopg
import redis

from strata.stack.appserver import DjangoProject, Gunicorn
from strata.stack.stack import Stack

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
# Varnish strips the port from Host: requests straight to an app server send the same
# Host, so that they share the page cache's entries with the accelerator's misses.
SITE_HOST = {"Host": HOST}
CONNECTIONS, THREADS = 8, 2
DJANGO_CACHE_SECONDS = 3600  # CACHE_MIDDLEWARE_SECONDS in peer_settings/django_cache_*


@dataclass
class Answer:
    """One response: status, headers (lower-case names), body and seconds it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")


class Connection:
    """A keep-alive HTTP/1.1 connection to one address, reopened when the server closed it.

    Not :class:`strata.httpclient.Session`: the figures depend on what this one does. It
    keeps no cookies (one connection carries several readers, each sending its own), opens
    a new connection for every POST, and times each request.
    """

    def __init__(self, host: str, port: int, timeout: float = 30):
        self.host, self.port, self.timeout = host, port, timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request; an idempotent one is retried once on a dropped connection."""
        attempts = 2 if method in ("GET", "HEAD") else 1
        for attempt in range(attempts):
            if self._conn is None or method not in ("GET", "HEAD"):
                self.close()
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            started = time.perf_counter()
            try:
                self._conn.request(method, path, body=body, headers=headers or {})
                response = self._conn.getresponse()
                data = response.read()
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt + 1 == attempts:
                    raise
                continue
            seconds = time.perf_counter() - started
            raw = response.getheaders()
            if response.will_close:
                self.close()
            return Answer(response.status, {k.lower(): v for k, v in raw}, data, seconds, raw)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def site_pages(database_url: str) -> dict[str, list[str]]:
    """Slugs of every article (newest first), tag and author, read straight from PostgreSQL."""
    with psycopg.connect(database_url) as conn:
        articles = conn.execute(
            "SELECT slug FROM newsroom_article ORDER BY published_at DESC, id DESC"
        ).fetchall()
        tags = conn.execute("SELECT slug FROM newsroom_tag ORDER BY id").fetchall()
        authors = conn.execute("SELECT slug FROM newsroom_author ORDER BY id").fetchall()
    return {
        "articles": [row[0] for row in articles],
        "tags": [row[0] for row in tags],
        "authors": [row[0] for row in authors],
    }


def redis_counters(client: redis.Redis) -> dict[str, int]:
    """Commands processed and key hits/misses so far."""
    stats = client.info("stats")
    return {
        "commands": stats["total_commands_processed"],
        "hits": stats["keyspace_hits"],
        "misses": stats["keyspace_misses"],
    }


@dataclass
class Peer:
    """One way of answering a cached page, run as its own app server (or the stack's)."""

    key: str
    label: str
    settings_module: str | None = None  # None: the stack's own app server (demo settings)
    wsgi_app: str = "newsroom_site.wsgi:application"
    health_path: str = "/-/health"
    kind: str = "django"  # strata | django | bytes


PEERS = [
    Peer("strata", "Strata page cache (demo settings)", kind="strata"),
    Peer(
        "django_documented",
        "Django cache, documented place (Update first, Fetch last)",
        "peer_settings.django_cache_documented",
    ),
    Peer(
        "django_after_strata",
        "Django cache just inside StrataMiddleware",
        "peer_settings.django_cache_after_strata",
    ),
    Peer(
        "django_alone",
        "Django cache, no Strata middleware",
        "peer_settings.django_cache_alone",
        health_path="/",
    ),
    Peer(
        "bytes",
        "bare WSGI app: same bytes from memory",
        wsgi_app="_bytes_wsgi:application",
        kind="bytes",
    ),
]


def start_peer(stack: Stack, peer: Peer, port: int, pages_file: Path) -> Gunicorn:
    """A Gunicorn app server like the stack's own, running ``peer`` beside it."""
    env = dict(stack.config.project.env)
    if peer.kind == "bytes":
        project = DjangoProject(
            directory=HERE,
            settings_module="newsroom_site.settings",  # unused by the bare app
            wsgi_app=peer.wsgi_app,
            health_path=peer.health_path,
            env={"STRATA_BENCH_PAGES": str(pages_file)},
        )
    else:
        env["PYTHONPATH"] = str(HERE)  # for peer_settings; the demo comes first
        project = DjangoProject(
            directory=stack.config.project.directory,
            settings_module=peer.settings_module,
            wsgi_app=peer.wsgi_app,
            health_path=peer.health_path,
            env=env,
        )
    server = Gunicorn(f"peer-{peer.key}", stack.run_dir, HOST, port, project, stack.config.workers)
    server.start()
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def body_digest(body: bytes) -> str:
    """A short SHA-256 of ``body``: whether two peers answered the same bytes."""
    return hashlib.sha256(body).hexdigest()[:16]


def check_strata_hit(port: int, path: str) -> dict:
    """Two GETs; the second must say ``X-Strata: page-hit``."""
    conn = Connection(HOST, port)
    conn.request("GET", path, headers=SITE_HOST)
    answer = conn.request("GET", path, headers=SITE_HOST)
    conn.close()
    hit = answer.status == 200 and answer.headers.get("x-strata") == "page-hit"
    tags = len(answer.headers.get("xkey", "").split())
    return {
        "status": answer.status,
        "serves_hits": hit,
        "evidence": f"X-Strata: {answer.headers.get('x-strata')}; {tags} tags",
        "tags": tags,
        "body_bytes": len(answer.body),
        "body_sha256": body_digest(answer.body),
    }


def store_django_pages(port: int, paths: list[str]) -> None:
    """One GET per page: Django's cache stores it (if it does at all)."""
    conn = Connection(HOST, port)
    for path in paths:
        conn.request("GET", path, headers=SITE_HOST)
    conn.close()


def check_django_hit(port: int, path: str) -> dict:
    """A GET at least a second after the page was stored.

    Django's cache stamps ``Expires`` when it stores a page and serves that header
    unchanged: an ``Expires`` more than a second short of ``Date`` + the cache lifetime
    means the response came from the cache, so the view did not run.
    """
    conn = Connection(HOST, port)
    answer = conn.request("GET", path, headers=SITE_HOST)
    conn.close()
    expires, date = answer.headers.get("expires"), answer.headers.get("date")
    hit = False
    if expires and date:
        age = (
            parsedate_to_datetime(date).timestamp()
            + DJANGO_CACHE_SECONDS
            - parsedate_to_datetime(expires).timestamp()
        )
        hit = answer.status == 200 and age >= 1
        evidence = f"Expires frozen {age:.0f} s ago"
    else:
        evidence = f"no Expires; Cache-Control: {answer.headers.get('cache-control')}"
    return {
        "status": answer.status,
        "serves_hits": hit,
        "evidence": evidence,
        "body_bytes": len(answer.body),
        "body_sha256": body_digest(answer.body),
    }


def check_bytes(port: int, path: str) -> dict:
    """One GET of the bare WSGI app: it answers every page from memory."""
    conn = Connection(HOST, port)
    answer = conn.request("GET", path, headers=SITE_HOST)
    conn.close()
    return {
        "status": answer.status,
        "serves_hits": answer.status == 200,
        "evidence": "from memory",
        "body_bytes": len(answer.body),
        "body_sha256": body_digest(answer.body),
    }


def capture_pages(port: int, paths: list[str], out: Path) -> None:
    """Save the pages as Strata's page cache serves them, for the bare WSGI app."""
    skip = {"server", "date", "connection", "content-length", "transfer-encoding"}
    pages = {}
    conn = Connection(HOST, port)
    for path in paths:
        answer = conn.request("GET", path, headers=SITE_HOST)
        pages[path] = {
            "status": f"{answer.status} OK",
            "headers": [(k, v) for k, v in answer.raw_headers if k.lower() not in skip],
            "body": answer.body.decode("latin-1"),
        }
    conn.close()
    out.write_text(json.dumps(pages))


def process_tree(pid: int | None) -> list[int]:
    """``pid`` and every process below it (an app server's master and its workers)."""
    pids, todo = [], [pid] if pid else []
    while todo:
        current = todo.pop()
        pids.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            with suppress(OSError):
                todo += [int(child) for child in children.read_text().split()]
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far (all their threads)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children (wrk, once ``run_wrk`` waited for it)."""
    times = os.times()
    return times.children_user + times.children_system


def check_varnish_hit(port: int, path: str) -> dict:
    """Anonymous GETs through the load balancer until Varnish answers ``X-Cache: HIT``."""
    conn = Connection(HOST, port)
    for _ in range(5):
        answer = conn.request("GET", path, headers=SITE_HOST)
        if answer.headers.get("x-cache") == "HIT":
            break
    conn.close()
    return {
        "status": answer.status,
        "serves_hits": answer.status == 200 and answer.headers.get("x-cache") == "HIT",
        "evidence": f"X-Cache: {answer.headers.get('x-cache')}; holes filled",
        "body_bytes": len(answer.body),
        "body_sha256": body_digest(answer.body),
    }
