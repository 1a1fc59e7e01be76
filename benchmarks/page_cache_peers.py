"""Strata's page cache beside Django's per-site cache, and each layer's share of real traffic.

One stack (HAProxy → Varnish → Gunicorn → Django → Redis → PostgreSQL), one run:

1. Page-cache hit against its peers, on the demo's home page and one article page, straight
   to one app server (2 sync Gunicorn workers, the stack's configuration), with wrk, the
   same connections, threads and duration for each: Strata's page cache (the demo's
   settings); Django's ``UpdateCacheMiddleware``/``FetchFromCacheMiddleware`` in the same
   Redis (``benchmarks/peer_settings/django_cache_*``: in the documented place, just
   inside ``StrataMiddleware``, and with no Strata middleware at all); a bare WSGI app
   answering the same bytes from memory; for reference, Strata through the HAProxy pool
   and a Varnish hit through the load balancer (its personal holes still go to Django).
   Each peer is checked to serve hits before it is measured; CPU per request is charged
   to each process, and a profile of one hit in-process shows where its time goes.
2. A seeded replay of mixed traffic through the load balancer (anonymous and logged-in
   reads, comments): the share of responses that each layer answered.
3. Freshness after a write: a reader posts a comment through the load balancer; the time
   to its 302, then to the first anonymous read that shows it (the page was a Varnish hit
   before the write, so the measurement includes the purge).

    .venv/bin/python benchmarks/page_cache_peers.py [--seconds 5] [--replay 4000] [--writes 40]

Writes ``benchmarks/results/page_cache_peers.json`` with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import redis
from rich.console import Console
from rich.table import Table

from strata.bench.stats import percentile
from strata.bench.wrk import run_wrk
from strata.edge.outcomes import Outcome
from strata.httpclient import Session, csrf_token
from strata.stack.ports import free_port
from strata.stack.stack import Stack
from strata.stack.varnish import varnish_counters

# The script's directory is on sys.path when it runs: the shared modules are siblings.
from _app_peers import (  # isort: skip
    CONNECTIONS,
    HOST,
    PEERS,
    SITE_HOST,
    THREADS,
    Answer,
    Connection,
    Peer,
    capture_pages,
    check_bytes,
    check_django_hit,
    check_strata_hit,
    check_varnish_hit,
    children_cpu_seconds,
    cpu_seconds,
    process_tree,
    redis_counters,
    site_pages,
    start_peer,
    store_django_pages,
)
from _common import machine, start_demo_stack, write_results  # isort: skip

console = Console(highlight=False, width=180)
HERE = Path(__file__).resolve().parent


# -- readers and their forms ------------------------------------------------------------


def form_post(conn: Connection, path: str, fields: dict[str, str], cookies: str) -> Answer:
    """POST url-encoded ``fields`` as a browser would (with a Referer and the cookies)."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Referer": f"http://{conn.host}:{conn.port}{path}",
    }
    if cookies:
        headers["Cookie"] = cookies
    return conn.request("POST", path, body=urlencode(fields).encode(), headers=headers)


@dataclass
class Reader:
    """A logged-in reader: the cookies to send and a CSRF token for its forms."""

    username: str
    cookies: str
    token: str


def log_in(host: str, port: int, username: str, article: str) -> Reader:
    """Log in through the load balancer; take a form token from ``article`` (an ESI hole)."""
    session = Session(host, port, timeout=30)
    page = session.get("/accounts/login/")
    fields = {
        "username": username,
        "password": "newsroom",
        "csrfmiddlewaretoken": csrf_token(page.text) or "",
    }
    answer = session.post_form("/accounts/login/", fields)
    if answer.status != 302 or "sessionid" not in session.cookies:
        raise SystemExit(f"could not log in as {username}: {answer.status}")
    token = csrf_token(session.get(article).text)
    session.close()
    if token is None:
        raise SystemExit(f"no CSRF token in {article} for {username} (ESI hole not filled?)")
    cookies = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    return Reader(username, cookies, token)


def load_average() -> float:
    """The load average over the last minute."""
    return round(os.getloadavg()[0], 2)


# -- 1. page-cache hit against its peers ---------------------------------------------------


@dataclass
class Meter:
    """What a wrk run cost each part of the stack: Redis commands, DB sessions, CPU."""

    cache: redis.Redis
    database_url: str
    groups: dict[str, list[int]]  # a name -> the root processes to charge CPU to


def db_sessions(database_url: str) -> int:
    """Sessions PostgreSQL has seen in this database (a request that queries opens one)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0] or 0)


def measure(url: str, seconds: float, meter: Meter) -> dict:
    """wrk on ``url`` (a discarded second of warm-up first), and its cost per request."""
    run_wrk(url, seconds=1, connections=CONNECTIONS, threads=THREADS, headers=SITE_HOST)
    pids = {
        name: [p for r in roots for p in process_tree(r)] for name, roots in meter.groups.items()
    }
    cpu_before = {name: cpu_seconds(group) for name, group in pids.items()}
    wrk_before = children_cpu_seconds()
    redis_before, sessions = redis_counters(meter.cache), db_sessions(meter.database_url)
    result = run_wrk(
        url, seconds=seconds, connections=CONNECTIONS, threads=THREADS, headers=SITE_HOST
    )
    redis_after = redis_counters(meter.cache)
    cpu = {name: cpu_seconds(group) - cpu_before[name] for name, group in pids.items()}
    cpu["wrk"] = children_cpu_seconds() - wrk_before
    time.sleep(0.2)  # PostgreSQL counts a session when it ends
    opened = db_sessions(meter.database_url) - sessions - 1  # less our own first look
    requests = max(result.requests, 1)
    return {
        "rps": round(result.rps, 1),
        "p50_ms": result.p50_ms,
        "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms,
        "requests": result.requests,
        "errors": result.errors,
        "redis_commands_per_request": round(
            (redis_after["commands"] - redis_before["commands"]) / requests, 2
        ),
        "db_sessions": max(opened, 0),
        "cpu_us_per_request": {name: round(1e6 * used / requests) for name, used in cpu.items()},
    }


def profile_hit(stack: Stack, peer: Peer, path: str, run_dir: Path, requests: int) -> dict:
    """Where one hit's time goes, in-process (``_page_hit_profile.py``)."""
    out = run_dir / f"profile-{peer.key}.json"
    env = stack.config.project.environment(STRATA_SERVER_NAME=f"profile-{peer.key}")
    if peer.settings_module:
        env["DJANGO_SETTINGS_MODULE"] = peer.settings_module
        env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(HERE)])
    result = subprocess.run(
        [sys.executable, str(HERE / "_page_hit_profile.py"), "--path", path]
        + ["--requests", str(requests), "--out", str(out)],
        cwd=stack.config.project.directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0 or not out.exists():
        return {"error": result.stderr[-2000:]}
    return json.loads(out.read_text())


def measure_strata(stack: Stack, pages: dict[str, str], meter: Meter, args) -> dict:
    """Strata's page-cache hit straight to the stack's first app server and via the pool."""
    app, redis_pid = stack.app_servers[0], stack.cache.pid
    pool_meter = replace(
        meter,
        groups={
            "app": [a.pid for a in stack.app_servers],
            "haproxy": [stack.load_balancer.pid],
            "redis": [redis_pid],
        },
    )
    entry: dict = {"label": PEERS[0].label, "pages": {}}
    for name, path in pages.items():
        check = check_strata_hit(app.port, path)
        direct = measure(f"http://{HOST}:{app.port}{path}", args.seconds, meter)
        pool = measure(
            f"http://{HOST}:{stack.load_balancer.pool_port}{path}", args.seconds, pool_meter
        )
        entry["pages"][name] = {**check, "runs": {"direct": direct, "via the HAProxy pool": pool}}
        console.print(f"  Strata {name}: {direct['rps']:.0f} req/s direct, {pool['rps']:.0f} pool")
    return entry


def measure_varnish(stack: Stack, pages: dict[str, str], meter: Meter, args) -> dict:
    """For reference: an accelerator hit through the load balancer (holes still go to Django)."""
    varnish_meter = replace(
        meter,
        groups={
            "app": [a.pid for a in stack.app_servers],
            "varnish+haproxy": [stack.accelerators[0].pid, stack.load_balancer.pid],
            "redis": [stack.cache.pid],
        },
    )
    entry: dict = {"label": "Varnish hit through the load balancer", "pages": {}}
    for name, path in pages.items():
        check = check_varnish_hit(stack.config.port, path)
        run = measure(f"http://{HOST}:{stack.config.port}{path}", args.seconds, varnish_meter)
        entry["pages"][name] = {**check, "runs": {"direct": run}}
        console.print(f"  Varnish {name}: {run['rps']:.0f} req/s")
    return entry


def measure_peer(
    stack: Stack, peer: Peer, pages: dict[str, str], meter: Meter, args, pages_file: Path
) -> dict:
    """One peer in an app server of its own: check that it serves hits, then wrk each page."""
    port = free_port()
    server = start_peer(stack, peer, port, pages_file)
    entry: dict = {"label": peer.label, "pages": {}}
    peer_meter = replace(meter, groups={"app": [server.pid], "redis": [stack.cache.pid]})
    try:
        if peer.kind == "django":
            store_django_pages(port, list(pages.values()))
            time.sleep(1.1)
        for name, path in pages.items():
            check = (check_django_hit if peer.kind == "django" else check_bytes)(port, path)
            entry["pages"][name] = {**check, "runs": {}}
            if not check["serves_hits"]:
                console.print(f"  {peer.label} {name}: [red]no hit[/] ({check['evidence']})")
                continue
            run = measure(f"http://{HOST}:{port}{path}", args.seconds, peer_meter)
            entry["pages"][name]["runs"]["direct"] = run
            console.print(f"  {peer.label} {name}: {run['rps']:.0f} req/s")
    finally:
        server.stop()
    return entry


def profile_peers(stack: Stack, section: dict, pages: dict[str, str], args, run_dir) -> None:
    """Profile a hit of Strata and of each Django peer that served hits, on every page.

    The Django peers' app servers are gone by now; their pages are still in Redis (an hour).
    """
    for peer in PEERS:
        entry = section["peers"].get(peer.key)
        if peer.kind == "bytes" or not entry:
            continue
        if not all(page["serves_hits"] for page in entry["pages"].values()):
            continue
        entry["profiles"] = {
            name: profile_hit(stack, peer, path, run_dir, args.profile)
            for name, path in pages.items()
        }


def measure_page_hits(stack: Stack, pages: dict[str, str], args, run_dir: Path) -> dict:
    """Section 1: every peer on every page, straight to one app server, same wrk settings."""
    app = stack.app_servers[0]
    meter = Meter(
        redis.Redis.from_url(stack.cache.url),
        stack.database.url,
        {"app": [app.pid], "redis": [stack.cache.pid]},
    )
    pages_file = run_dir / "pages.json"
    section: dict = {"pages": pages, "peers": {}}
    section["peers"]["strata"] = measure_strata(stack, pages, meter, args)
    capture_pages(app.port, list(pages.values()), pages_file)
    for peer in PEERS[1:]:
        section["peers"][peer.key] = measure_peer(stack, peer, pages, meter, args, pages_file)
    section["peers"]["varnish"] = measure_varnish(stack, pages, meter, args)
    strata = section["peers"]["strata"]["pages"]
    for name, path in pages.items():
        # Strata once more at the end: the drift of the machine over the section.
        again = measure(f"http://{HOST}:{app.port}{path}", args.seconds, meter)
        strata[name]["runs"]["direct, again at the end"] = again
    for entry in section["peers"].values():
        for name, page in entry["pages"].items():
            page["same_body_as_strata"] = page["body_sha256"] == strata[name]["body_sha256"]
    profile_peers(stack, section, pages, args, run_dir)
    add_ratios(section)
    return section


def strata_rps(page: dict) -> float:
    """Strata's direct requests/s on a page: the mean of its runs before and after the peers."""
    runs = page["runs"]
    return statistics.mean(runs[k]["rps"] for k in ("direct", "direct, again at the end"))


def add_ratios(section: dict) -> None:
    """Strata's hit against each peer's: requests/s ratio and p50 ratio, per page."""
    strata = section["peers"]["strata"]["pages"]
    for page in strata.values():
        runs = page["runs"]
        page["drift"] = round(
            runs["direct, again at the end"]["rps"] / runs["direct"]["rps"] - 1, 3
        )
    for key, peer in section["peers"].items():
        if key == "strata":
            continue
        for name, page in peer["pages"].items():
            theirs = page["runs"].get("direct")
            if theirs:
                ours = strata[name]["runs"]["direct"]
                page["strata_rps_ratio"] = round(strata_rps(strata[name]) / theirs["rps"], 2)
                page["strata_p50_ratio"] = round(ours["p50_ms"] / theirs["p50_ms"], 2)


# -- 2. a replay of mixed traffic ----------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One request of the replay."""

    cls: str  # anonymous | logged-in | comment
    kind: str  # home | article | tag | author | my-comments
    path: str
    reader: int | None = None


@dataclass
class Record:
    """What one request of the replay met."""

    cls: str
    kind: str
    status: int
    x_cache: str
    x_strata: str
    ms: float
    index: int  # place in the plan


ANONYMOUS_MIX = {"home": 15, "article": 60, "tag": 15, "author": 10}
LOGGED_IN_MIX = {"home": 15, "article": 50, "tag": 15, "author": 10, "my-comments": 10}
CLASS_MIX = {"anonymous": 70.0, "logged-in": 28.5, "comment": 1.5}


class ReplayPlanner:
    """A seeded, deterministic list of requests with Zipf-like popularity of pages."""

    def __init__(self, site: dict[str, list[str]], readers: int, seed: int, zipf_s: float = 1.0):
        self.rng = random.Random(seed)
        self.site = site
        self.readers = readers
        self.weights = {
            name: self._zipf(len(slugs), zipf_s) for name, slugs in site.items() if slugs
        }

    @staticmethod
    def _zipf(n: int, s: float) -> list[float]:
        cumulative, total = [], 0.0
        for rank in range(1, n + 1):
            total += 1 / rank**s
            cumulative.append(total)
        return cumulative

    def _slug(self, collection: str) -> str:
        slugs = self.site[collection]
        return self.rng.choices(slugs, cum_weights=self.weights[collection])[0]

    def _path(self, kind: str) -> str:
        if kind == "home":
            return "/"
        if kind == "my-comments":
            return "/me/comments/"
        if kind == "article":
            return f"/articles/{self._slug('articles')}/"
        if kind == "author":
            return f"/authors/{self._slug('authors')}/"
        page = self.rng.choices([1, 2, 3], weights=[80, 15, 5])[0]
        return f"/tags/{self._slug('tags')}/" + (f"?page={page}" if page > 1 else "")

    def _pick(self, mix: dict[str, float]) -> str:
        return self.rng.choices(list(mix), weights=list(mix.values()))[0]

    def plan(self, count: int) -> list[Planned]:
        requests = []
        for _ in range(count):
            cls = self._pick(CLASS_MIX)
            if cls == "anonymous":
                kind = self._pick(ANONYMOUS_MIX)
                requests.append(Planned(cls, kind, self._path(kind)))
                continue
            reader = self.rng.randrange(self.readers)
            kind = "article" if cls == "comment" else self._pick(LOGGED_IN_MIX)
            requests.append(Planned(cls, kind, self._path(kind), reader))
        return requests


def send_planned(conn: Connection, item: Planned, readers: list[Reader], index: int) -> Answer:
    """One request of the replay: a read, or a comment posted by a logged-in reader."""
    if item.cls == "anonymous":
        return conn.request("GET", item.path)
    reader = readers[item.reader]
    if item.cls == "logged-in":
        return conn.request("GET", item.path, headers={"Cookie": reader.cookies})
    fields = {"body": f"Replay comment {index}.", "csrfmiddlewaretoken": reader.token}
    return form_post(conn, item.path, fields, reader.cookies)


def replay(
    host: str, port: int, plan: list[Planned], readers: list[Reader], threads: int, limit: float
) -> tuple[list[Record], float]:
    """Send ``plan`` from ``threads`` threads (request i by thread i mod threads), bounded in time."""
    records: list[Record] = []
    lock = threading.Lock()
    deadline = time.monotonic() + limit

    def worker(offset: int) -> None:
        conn = Connection(host, port)
        mine = []
        for index in range(offset, len(plan), threads):
            if time.monotonic() > deadline:
                break
            item = plan[index]
            try:
                answer = send_planned(conn, item, readers, index)
            except OSError as exc:
                mine.append(Record(item.cls, item.kind, 0, "", f"error: {exc}", 0.0, index))
                continue
            mine.append(
                Record(
                    item.cls,
                    item.kind,
                    answer.status,
                    answer.headers.get("x-cache", ""),
                    answer.headers.get("x-strata", ""),
                    answer.seconds * 1000,
                    index,
                )
            )
        conn.close()
        with lock:
            records.extend(mine)

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return records, time.monotonic() - started


LAYERS = [
    "varnish",
    Outcome.PAGE_HIT.value,
    Outcome.PAGE_STALE.value,
    "rendered",
    "bypass",
    "error",
]


def layer_of(record: Record) -> str:
    """Which layer answered: Varnish's X-Cache first (its X-Strata is the stored one)."""
    if record.status == 0 or record.status >= 400:
        return "error"
    if record.x_cache == "HIT":
        return "varnish"
    if record.x_strata in (Outcome.PAGE_HIT, Outcome.PAGE_STALE, Outcome.PAGE_MISS):
        return "rendered" if record.x_strata == Outcome.PAGE_MISS else str(record.x_strata)
    if record.x_strata.startswith("bypass"):
        return "bypass"
    return "error"


def summarize(records: list[Record]) -> dict:
    """Shares of each layer, latency and bypass reasons of a set of replayed requests."""
    layers = Counter(layer_of(r) for r in records)
    reasons = Counter(
        r.x_strata.split(" in ")[0] for r in records if layer_of(r) == "bypass"
    ).most_common(4)
    times = [r.ms for r in records if r.status]
    by_layer = {layer: [r.ms for r in records if layer_of(r) == layer] for layer in LAYERS}
    return {
        "requests": len(records),
        "share": {layer: round(layers[layer] / max(len(records), 1), 4) for layer in LAYERS},
        "p50_ms": round(percentile(times, 0.5) or 0, 2),
        "p99_ms": round(percentile(times, 0.99) or 0, 2),
        "ms_by_layer": {
            layer: {
                "p50": round(percentile(times, 0.5), 2),
                "p99": round(percentile(times, 0.99), 2),
            }
            for layer, times in by_layer.items()
            if times
        },
        "bypass_reasons": dict(reasons),
        "statuses": dict(Counter(str(r.status) for r in records)),
    }


# Varnish's counters around the replay, for its share of backend work.
REPLAY_COUNTERS = [
    "client_req",
    "cache_hit",
    "cache_hit_grace",
    "cache_miss",
    "s_pass",
    "esi_req",
    "backend_req",
]


def measure_replay(stack: Stack, site: dict, readers: list[Reader], args) -> dict:
    """Section 2: the replay through the load balancer, summarised per class of traffic."""
    plan = ReplayPlanner(site, len(readers), args.seed).plan(args.replay)
    cache = redis.Redis.from_url(stack.cache.url)
    varnish_dir = stack.accelerators[0].work_dir
    varnish_before = varnish_counters(varnish_dir, REPLAY_COUNTERS)
    redis_before = redis_counters(cache)
    load_before = load_average()
    records, seconds = replay(
        HOST, stack.config.port, plan, readers, args.replay_threads, args.replay_limit
    )
    varnish_after = varnish_counters(varnish_dir, REPLAY_COUNTERS)
    redis_after = redis_counters(cache)
    varnish = {k: varnish_after[k] - varnish_before[k] for k in varnish_after}
    hits = redis_after["hits"] - redis_before["hits"]
    misses = redis_after["misses"] - redis_before["misses"]
    result = {
        "planned": len(plan),
        "sent": len(records),
        "seconds": round(seconds, 1),
        "threads": args.replay_threads,
        "seed": args.seed,
        "load_before": load_before,
        "mix": {"classes": CLASS_MIX, "anonymous": ANONYMOUS_MIX, "logged_in": LOGGED_IN_MIX},
        "classes": {cls: summarize([r for r in records if r.cls == cls]) for cls in CLASS_MIX},
        "overall": summarize(records),
        # Caches fill as the replay goes: its second half shows the steadier state.
        "overall, second half": summarize([r for r in records if r.index >= len(plan) // 2]),
        "by_kind": {
            f"{cls} {kind}": summarize([r for r in records if (r.cls, r.kind) == (cls, kind)])
            for cls, kind in sorted({(r.cls, r.kind) for r in records})
        },
        "varnish": varnish,
        # Every replayed request went through Varnish; its backend requests include the
        # ESI sub-requests for holes (and its own health probes, one a second at most).
        "django_requests_per_replayed_request": round(
            varnish["backend_req"] / max(len(records), 1), 2
        ),
        "redis_get_hit_ratio": round(hits / max(hits + misses, 1), 4),
    }
    return result


# -- 3. freshness after a write -------------------------------------------------------------


def cache_in_varnish(conn: Connection, path: str, tries: int = 8) -> bool:
    """Anonymous GETs until Varnish answers ``X-Cache: HIT`` (bounded)."""
    for _ in range(tries):
        if conn.request("GET", path).headers.get("x-cache") == "HIT":
            return True
        time.sleep(0.02)
    return False


def one_write(conn: Connection, writer: Reader, path: str, poll_limit: float) -> dict:
    """Post a comment with unique words; time its 302, then the first anonymous read showing it."""
    words = f"freshness{secrets.token_hex(6)}"
    fields = {"body": f"Checking {words} now.", "csrfmiddlewaretoken": writer.token}
    writer_conn = Connection(conn.host, conn.port)
    sent = time.perf_counter()
    answer = form_post(writer_conn, path, fields, writer.cookies)
    answered = time.perf_counter()
    writer_conn.close()
    if answer.status != 302:
        return {"error": f"POST answered {answer.status}"}
    polls, first, seen_at = 0, None, None
    while time.perf_counter() - answered < poll_limit:
        read = conn.request("GET", path)
        polls += 1
        fresh = words.encode() in read.body
        if first is None:
            first = {"fresh": fresh, "x_cache": read.headers.get("x-cache", "")}
            first["x_strata"] = read.headers.get("x-strata", "")
        if fresh:
            seen_at = time.perf_counter()
            break
    return {
        "post_to_302_ms": (answered - sent) * 1000,
        "302_to_fresh_ms": None if seen_at is None else (seen_at - answered) * 1000,
        "polls": polls,
        "first_read": first,
    }


def measure_freshness(stack: Stack, site: dict, writer: Reader, args) -> dict:
    """Section 3: ``args.writes`` comments, each on an article Varnish had cached."""
    conn = Connection(HOST, stack.config.port)
    articles = site["articles"][200 : 200 + args.writes]  # not the replay's hottest pages
    writes, cached_before = [], 0
    deadline = time.monotonic() + args.writes_limit
    for slug in articles:
        if time.monotonic() > deadline:
            break
        path = f"/articles/{slug}/"
        cached_before += cache_in_varnish(conn, path)
        writes.append(one_write(conn, writer, path, poll_limit=5.0))
    conn.close()
    done = [w for w in writes if "error" not in w]
    post = [w["post_to_302_ms"] for w in done]
    fresh = [w["302_to_fresh_ms"] for w in done if w["302_to_fresh_ms"] is not None]
    return {
        "writes": len(writes),
        "errors": [w["error"] for w in writes if "error" in w],
        "varnish_hit_before_write": cached_before,
        "post_to_302_ms": {"p50": percentile(post, 0.5), "p99": percentile(post, 0.99)},
        "302_to_fresh_ms": {"p50": percentile(fresh, 0.5), "p99": percentile(fresh, 0.99)},
        "never_fresh": len(done) - len(fresh),
        "fresh_on_first_read": sum(1 for w in done if w["first_read"]["fresh"]),
        "first_read_x_cache": dict(Counter(w["first_read"]["x_cache"] for w in done)),
        "first_read_x_strata": dict(Counter(w["first_read"]["x_strata"] for w in done)),
        "mean_polls": round(statistics.mean(w["polls"] for w in done), 2) if done else None,
        "samples": done,
    }


# -- report ----------------------------------------------------------------------------------


def ms(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def cpu_text(run: dict) -> str:
    return " / ".join(f"{name} {us}" for name, us in run["cpu_us_per_request"].items())


def report_page_hits(section: dict, seconds: float) -> None:
    table = Table(
        title=f"1. Page-cache hit straight to one app server (Gunicorn, 2 sync workers), "
        f"wrk {CONNECTIONS} connections / {THREADS} threads / {seconds:g} s, Host: {HOST}"
    )
    for column in (
        "peer",
        "page",
        "serves hits? (evidence)",
        "body bytes (same as Strata's?)",
        "req/s",
        "p50 ms",
        "p99 ms",
        "Redis cmds/req",
        "DB sessions",
        "CPU µs/req by process",
        "Strata ÷ this",
    ):
        left = column.startswith(("peer", "serves", "CPU"))
        table.add_column(column, justify="left" if left else "right")
    for peer in section["peers"].values():
        for name, page in peer["pages"].items():
            for how, run in page["runs"].items() or [("direct", None)]:
                table.add_row(
                    peer["label"] if how == "direct" else f"  … {how}",
                    name,
                    f"{'yes' if page['serves_hits'] else '[red]no[/]'} ({page['evidence']})",
                    f"{page['body_bytes']} ({'same' if page['same_body_as_strata'] else 'differs'})",
                    f"{run['rps']:.0f}" if run else "—",
                    ms(run and run["p50_ms"]),
                    ms(run and run["p99_ms"]),
                    ms(run and run["redis_commands_per_request"]),
                    str(run["db_sessions"]) if run else "—",
                    cpu_text(run) if run else "—",
                    ms(page.get("strata_rps_ratio")) if how == "direct" else "",
                )
    console.print(table)
    console.print(
        "CPU µs/req: user + system time of the app server(s), Redis, HAProxy/Varnish and wrk "
        "over the run, per request. Strata ÷ this: Strata's direct req/s (mean of its runs before and after the peers) over "
        "the peer's; drift of Strata's own figure over the section: "
        + ", ".join(
            f"{name} {page['drift']:+.1%}"
            for name, page in section["peers"]["strata"]["pages"].items()
        )
    )
    report_profiles(section)


def report_profiles(section: dict) -> None:
    table = Table(title="Where one hit's time goes (in-process WSGI calls, no server; cProfile)")
    for column in ("peer", "page", "µs/hit", "Redis cmds", "clients built", "largest shares"):
        table.add_column(column, justify="right" if column[0] in "µRc" else "left")
    for peer in section["peers"].values():
        for name, profile in peer.get("profiles", {}).items():
            if "error" in profile:
                table.add_row(
                    peer["label"], name, "[red]failed[/]", "", "", profile["error"][-200:]
                )
                continue
            shares = ", ".join(
                f"{label} {share:.0%}"
                for label, share in list(profile["share_by_category"].items())[:4]
            )
            table.add_row(
                peer["label"],
                name,
                f"{profile['us_per_request']:.0f}",
                f"{profile['redis_commands_per_request']:g}",
                f"{profile['redis_clients_per_request']:g}",
                shares,
            )
    console.print(table)


def report_replay(section: dict) -> None:
    table = Table(
        title=f"2. Who answered a replay of {section['sent']} requests through the load balancer "
        f"({section['threads']} threads, seed {section['seed']}, {section['seconds']:g} s)"
    )
    for column in ("traffic", "requests", *LAYERS, "p50 ms", "p99 ms", "bypass reasons"):
        table.add_column(
            column, justify="left" if column in ("traffic", "bypass reasons") else "right"
        )
    rows = [*section["classes"].items(), ("overall", section["overall"])]
    rows.append(("overall, 2nd half of the plan", section["overall, second half"]))
    for cls, summary in rows:
        table.add_row(
            cls,
            str(summary["requests"]),
            *[f"{summary['share'][layer]:.1%}" for layer in LAYERS],
            ms(summary["p50_ms"], 1),
            ms(summary["p99_ms"], 1),
            "; ".join(f"{reason} ×{n}" for reason, n in summary["bypass_reasons"].items()),
        )
    console.print(table)
    latency = section["overall"]["ms_by_layer"]
    console.print(
        "Latency by the layer that answered (all traffic), p50 / p99 ms: "
        + "; ".join(f"{layer} {t['p50']:.1f} / {t['p99']:.1f}" for layer, t in latency.items())
    )
    v = section["varnish"]
    console.print(
        f"Varnish: {v['client_req']} client requests and {v['esi_req']} ESI sub-requests "
        f"(personal holes), {v['cache_hit']} hits ({v['cache_hit_grace']} in grace), "
        f"{v['cache_miss']} misses, {v['s_pass']} passes, {v['backend_req']} backend requests: "
        f"{section['django_requests_per_replayed_request']:.2f} Django requests per replayed "
        f"request. Redis GET hit ratio over every layer: {section['redis_get_hit_ratio']:.1%}. "
        "Logged-in readers carry a session cookie, so Varnish passes them all (0% by design)."
    )


def report_freshness(section: dict) -> None:
    table = Table(
        title="3. From a comment's POST to the accelerator serving it to anonymous readers"
    )
    for column in (
        "writes",
        "Varnish HIT before",
        "POST → 302 p50 / p99 ms",
        "302 → fresh read p50 / p99 ms",
        "fresh on first read",
        "first read X-Cache",
        "never fresh",
    ):
        table.add_column(column, justify="right")
    done = section["writes"] - len(section["errors"])
    table.add_row(
        str(section["writes"]),
        f"{section['varnish_hit_before_write']}/{section['writes']}",
        f"{ms(section['post_to_302_ms']['p50'], 1)} / {ms(section['post_to_302_ms']['p99'], 1)}",
        f"{ms(section['302_to_fresh_ms']['p50'], 1)} / {ms(section['302_to_fresh_ms']['p99'], 1)}",
        f"{section['fresh_on_first_read']}/{done}",
        ", ".join(f"{k or '—'} ×{n}" for k, n in section["first_read_x_cache"].items()),
        str(section["never_fresh"]),
    )
    console.print(table)
    if section["errors"]:
        console.print(f"[red]write errors: {section['errors'][:3]}[/]")


def report_target(section: dict) -> None:
    """The issue's target: a Strata hit at least 1.5× the requests/s of Django's."""
    for key in ("django_after_strata", "django_alone"):
        peer = section["peers"].get(key, {})
        for name, page in peer.get("pages", {}).items():
            ratio = page.get("strata_rps_ratio")
            if ratio is not None:
                met = "[green]met[/]" if ratio >= 1.5 else "[red]not met[/]"
                console.print(f"target ≥ 1.5× {peer['label']} on {name}: {ratio:.2f}× {met}")


# -- main ------------------------------------------------------------------------------------


def run_sections(stack: Stack, args, run_dir: Path) -> dict:
    """The three sections, in order, on the running stack."""
    results: dict = {"machine": machine(stack)}
    described = results["machine"]
    results["settings"] = {**vars(args), "json": str(args.json)}
    results["settings"].update(wrk_connections=CONNECTIONS, wrk_threads=THREADS)
    console.print(
        f"{described['cpus']} cores, {described['platform']}, Python {described['python']}, "
        f"Django {described['django']}; "
        + ", ".join(f"{p['implementation']} {p['version']}" for p in described["programs"])
        + f"; edge TTL {described['stack']['edge_ttl']} s"
    )
    site = site_pages(stack.database.url)
    pages = {"home": "/", "article": f"/articles/{site['articles'][0]}/"}
    results["load_before"] = load_average()
    console.print("[bold]1. page-cache hits against their peers[/]")
    results["page_hits"] = measure_page_hits(stack, pages, args, run_dir)
    console.print(f"[bold]2. replay[/]: logging in {args.readers} readers")
    readers = [
        log_in(HOST, stack.config.port, f"reader{i + 1}", pages["article"])
        for i in range(args.readers)
    ]
    results["replay"] = measure_replay(stack, site, readers, args)
    console.print(f"[bold]3. freshness[/]: {args.writes} comments by {readers[0].username}")
    results["freshness"] = measure_freshness(stack, site, readers[0], args)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="per wrk run (section 1)")
    parser.add_argument("--profile", type=int, default=1500, help="hits profiled per peer")
    parser.add_argument("--replay", type=int, default=4000, help="requests replayed")
    parser.add_argument("--replay-threads", type=int, default=4)
    parser.add_argument("--replay-limit", type=float, default=90, help="seconds, at most")
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--writes", type=int, default=40)
    parser.add_argument("--writes-limit", type=float, default=40, help="seconds, at most")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--port", type=int, default=23000, help="the stack's base port")
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/page_cache_peers.json")
    )
    args = parser.parse_args()

    run_dir = Path(tempfile.mkdtemp(prefix="strata-bench-pages-", dir="/tmp"))
    run_dir.chmod(0o755)
    started = time.monotonic()
    console.print(f"[bold]starting the stack[/] on {HOST}:{args.port} ({run_dir})")
    progress = lambda message: console.print(f"  {message}")  # noqa: E731
    stack = start_demo_stack(run_dir, args.port, progress)  # stops what it started if it fails
    try:
        results = run_sections(stack, args, run_dir)
    except BaseException:
        console.print(f"[red]failed[/]: the programs' logs stay in {run_dir / 'logs'}")
        raise
    finally:
        stack.stop()
    shutil.rmtree(run_dir, ignore_errors=True)
    results["seconds_total"] = round(time.monotonic() - started, 1)

    report_page_hits(results["page_hits"], args.seconds)
    report_target(results["page_hits"])
    report_replay(results["replay"])
    report_freshness(results["freshness"])
    write_results(args.json, results)
    console.print(f"wrote {args.json} ({results['seconds_total']:.0f} s in all)")


if __name__ == "__main__":
    main()
