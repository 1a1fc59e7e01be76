"""The same demo page through Strata and through each of its peers, tier by tier, in one run.

One stack (HAProxy → Varnish → Gunicorn → Django → Redis → PostgreSQL) and, beside it,
each peer in a Gunicorn of its own like the stack's app servers (2 sync workers, the same
PostgreSQL and Redis). Every contender is driven by wrk with the same connections, threads
and duration, after a second of warm-up that is discarded (and, where the contender says
who answered, checks every response):

* edge: a second varnishd serving a static copy of the page (``Cache-Control: public,
  max-age=600`` from a bare WSGI origin), measured directly: the physical reference; and
  the full Strata stack on a hit, through HAProxy's public port (``X-Cache: HIT``);
* page cache: Strata's page-cache hit straight to one of the stack's app servers
  (``X-Strata: page-hit``) against Django's own cache middleware
  (``peer_settings/django_cache_alone``); and a bare WSGI app answering the page's bytes
  from memory under the same Gunicorn: the floor for anything in Python;
* warm: Strata's warm path (page cache off, query cache and fragments warm:
  ``peer_settings/warm_strata``) against django-cachalot and django-cacheops
  (``warm_cachalot``, ``warm_cacheops``: no Strata layer at all), with Strata's query
  cache alone (``warm_strata_qc``) and plain Django (``warm_plain``) for reference.

Strata's own figure of a tier is measured first and again last; the ratios use the mean.

    .venv/bin/python benchmarks/peers.py [--seconds 5] [--article] [--port 24000]

Writes ``benchmarks/results/peers.json``: the machine's description, every figure, the
ratios and ``readme_table``, a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis
from rich.console import Console
from rich.table import Table

from strata.bench import wrk
from strata.bench.report import package_version
from strata.edge.outcomes import Outcome
from strata.stack.appserver import Gunicorn
from strata.stack.errors import StackError
from strata.stack.ports import free_port
from strata.stack.probes import http_get
from strata.stack.program import Program, find_program
from strata.stack.stack import Stack
from strata.stack.varnish import varnish_counters

# The script's directory is on sys.path when it runs: the shared modules are siblings.
from _app_peers import (  # isort: skip
    CONNECTIONS,
    HOST,
    PEERS,
    SITE_HOST,
    THREADS,
    Connection,
    Peer,
    body_digest,
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
from _common import machine, require_program, start_demo_stack  # isort: skip

console = Console(highlight=False, width=200)
HERE = Path(__file__).resolve().parent
TIERS = {
    "edge": "an accelerator hit",
    "page": "a whole page from the app server's memory or Redis",
    "warm": "the view runs, its queries (and fragments) cached",
}
# Each contender: (short label, what it is).
CONTENDERS = {
    "strata_edge": (
        "Strata full stack, hit",
        "the whole stack through HAProxy's public port; Varnish answers (X-Cache: HIT)",
    ),
    "varnish_static": (
        "Varnish, static copy",
        "a varnishd of its own serving the page as a static object "
        "(Cache-Control: public, max-age=600), measured directly: the physical reference",
    ),
    "strata_page": (
        "Strata page-cache hit",
        "one of the stack's app servers, straight (X-Strata: page-hit)",
    ),
    "django_alone": (
        "Django cache middleware",
        "Update/FetchFromCacheMiddleware in the same Redis, no Strata middleware "
        "(peer_settings/django_cache_alone)",
    ),
    "bytes": (
        "bare WSGI app, bytes",
        "the page's bytes and headers from memory, no Django: the floor for anything in Python",
    ),
    "strata_warm": (
        "Strata warm path",
        "page cache off; query cache and fragments warm (peer_settings/warm_strata)",
    ),
    "cachalot": (
        "django-cachalot",
        "its defaults, results in the same Redis, no Strata layer (peer_settings/warm_cachalot)",
    ),
    "cacheops": (
        "django-cacheops",
        "every newsroom and auth query, Redis database 1, no Strata layer "
        "(peer_settings/warm_cacheops)",
    ),
    "strata_qc": (
        "Strata query cache alone",
        "page and fragment caches off: the same work as cachalot and cacheops "
        "(peer_settings/warm_strata_qc)",
    ),
    "plain": (
        "plain Django, no cache",
        "no Strata layer, no query cache: every query to PostgreSQL (peer_settings/warm_plain)",
    ),
}
DJANGO_ALONE = next(p for p in PEERS if p.key == "django_alone")
BYTES = next(p for p in PEERS if p.key == "bytes")  # _bytes_wsgi: the page from memory
ORIGIN = Peer("static-origin", "origin of the static copy", wsgi_app=BYTES.wsgi_app, kind="bytes")


@dataclass(frozen=True)
class WarmPeer:
    """A contender of the warm tier: the demo under ``settings`` in a Gunicorn of its own."""

    key: str
    settings: str
    role: str  # strata | peer | reference
    distribution: str | None = None  # the package it needs, if not Strata's own

    def peer(self, path: str) -> Peer:
        """The app server to start for measuring ``path``."""
        # Without StrataMiddleware there is no /-/health: such peers are probed on the
        # page itself (and no other page's queries are counted as its).
        health = "/-/health" if self.key.startswith("strata") else path
        return Peer(self.key, CONTENDERS[self.key][0], self.settings, health_path=health)


WARM = [
    WarmPeer("strata_warm", "peer_settings.warm_strata", "strata"),
    WarmPeer("cachalot", "peer_settings.warm_cachalot", "peer", "django-cachalot"),
    WarmPeer("cacheops", "peer_settings.warm_cacheops", "peer", "django-cacheops"),
    WarmPeer("strata_qc", "peer_settings.warm_strata_qc", "reference"),
    WarmPeer("plain", "peer_settings.warm_plain", "reference"),
]

STATIC_VCL = """vcl 4.1;
# A static copy of the page: one object, stored for ten minutes, nothing else.
backend origin {{ .host = "{host}"; .port = "{port}"; }}
sub vcl_recv {{
    unset req.http.Cookie;
    return (hash);
}}
sub vcl_deliver {{
    if (obj.hits > 0) {{
        set resp.http.X-Cache = "HIT";
    }} else {{
        set resp.http.X-Cache = "MISS";
    }}
}}
"""


class StaticVarnish(Program):
    """A varnishd of this benchmark's own, in the foreground, caching one origin's pages."""

    layer = "static reference"
    implementation = "Varnish"

    def __init__(self, run_dir: Path, port: int, origin_port: int, binary: str):
        super().__init__("static-varnish", run_dir, HOST, port)
        self.binary = binary
        self.origin_port = origin_port
        self.vcl_path = run_dir / "config" / "static-varnish.vcl"
        self.work_dir = run_dir / "static-varnish"  # varnishd creates it

    def prepare(self) -> None:
        self.vcl_path.parent.mkdir(parents=True, exist_ok=True)
        self.vcl_path.write_text(STATIC_VCL.format(host=HOST, port=self.origin_port))
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def argv(self) -> list[str]:
        # -j none: a private instance as root, no privilege separation to trip over.
        return [self.binary, "-F", "-j", "none", "-n", str(self.work_dir), "-T", "none"] + [
            "-a",
            f"{HOST}:{self.port}",
            "-f",
            str(self.vcl_path),
            "-s",
            "malloc,64m",
        ]

    def healthy(self) -> bool:
        try:
            return http_get(HOST, self.port, "/", timeout=2).status == 200
        except OSError:
            return False


# -- measuring --------------------------------------------------------------------------------


def wrk_varnish_counters(work_dir: Path) -> dict[str, int]:
    """Client requests and hits so far of the varnishd whose ``-n`` is ``work_dir``
    (none when varnishstat cannot read them)."""
    try:
        return varnish_counters(
            work_dir, ["client_req", "cache_hit", "cache_miss", "s_pass", "backend_req"]
        )
    except StackError:
        return {}


def db_transactions(database_url: str) -> int:
    """Transactions PostgreSQL has counted in this database: one per autocommit query."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    return int(row[0] or 0)


@dataclass
class Target:
    """Where wrk sends its requests, and what it costs: processes charged, proof of who answered."""

    url: str
    cpu_roots: dict[str, list[int | None]]
    proof: tuple[str, str] | None = None  # (header, value) every response should carry
    varnish_dir: Path | None = None  # count this varnishd's hits over the run


def warm_up(target: Target) -> dict:
    """One second of wrk, discarded; with a proof, every response's header is checked."""
    if target.proof and hasattr(wrk, "run_wrk_checked"):
        header, value = target.proof
        result = wrk.run_wrk_checked(
            target.url,
            header=header,
            value=value,
            seconds=1,
            connections=CONNECTIONS,
            threads=THREADS,
            headers=SITE_HOST,
        )
        return {
            "requests": result.requests,
            "checked": f"{header}: {value}",
            "answered": result.answered,
            "others": {str(k): v for k, v in result.others.items()},
        }
    result = wrk.run_wrk(
        target.url, seconds=1, connections=CONNECTIONS, threads=THREADS, headers=SITE_HOST
    )
    return {"requests": result.requests}


def measure(target: Target, seconds: float, cache: redis.Redis) -> dict:
    """A checked warm-up, then wrk for ``seconds``: latency, throughput and cost per request.

    The measured run is plain wrk for every contender (the same client work per response);
    the proof of who answered comes from the warm-up, and from varnishstat for Varnish.
    """
    load = round(os.getloadavg()[0], 2)
    warm = warm_up(target)
    pids = {
        name: [p for root in roots if root for p in process_tree(root)]
        for name, roots in target.cpu_roots.items()
    }
    cpu_before = {name: cpu_seconds(group) for name, group in pids.items()}
    wrk_before = children_cpu_seconds()
    redis_before = redis_counters(cache)["commands"]
    varnish_before = wrk_varnish_counters(target.varnish_dir) if target.varnish_dir else {}
    result = wrk.run_wrk(
        target.url, seconds=seconds, connections=CONNECTIONS, threads=THREADS, headers=SITE_HOST
    )
    requests = max(result.requests, 1)
    redis_commands = redis_counters(cache)["commands"] - redis_before
    cpu = {name: cpu_seconds(group) - cpu_before[name] for name, group in pids.items()}
    run = {
        "rps": round(result.rps, 1),
        "p50_ms": result.p50_ms,
        "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms,
        "max_ms": result.max_ms,
        "requests": result.requests,
        "errors": result.errors,
        "load_1m_before": load,
        "warm_up": warm,
        "redis_commands_per_request": round(redis_commands / requests, 2),
        "cpu_us_per_request": {name: round(1e6 * used / requests) for name, used in cpu.items()},
        "wrk_cpu_us_per_request": round(1e6 * (children_cpu_seconds() - wrk_before) / requests),
    }
    run["server_cpu_us_per_request"] = sum(run["cpu_us_per_request"].values())
    if target.varnish_dir:
        after = wrk_varnish_counters(target.varnish_dir)
        run["varnish"] = {k: after[k] - varnish_before.get(k, 0) for k in after}
        run["varnish_hit_share"] = round(
            run["varnish"].get("cache_hit", 0) / max(run["varnish"].get("client_req", 0), 1), 4
        )
    return run


# -- the contenders --------------------------------------------------------------------------


@dataclass
class Bench:
    """What every measurement needs: the stack, the run's settings, where files go."""

    stack: Stack
    args: argparse.Namespace
    run_dir: Path
    cache: redis.Redis

    def row(self, key, tier, role, path, check, run=None) -> dict:
        label, description = CONTENDERS[key]
        console.print(f"  {label} {path}: {rps_text(run) if run else check.get('error', '')}")
        return {
            "key": key,
            "tier": tier,
            "label": label,
            "description": description,
            "role": role,
            "path": path,
            "check": check,
            "run": run,
        }

    def measure(self, target: Target) -> dict:
        return measure(target, self.args.seconds, self.cache)


def strata_page_hit(bench: Bench, path: str) -> dict:
    """Strata's page-cache hit, straight to the stack's first app server."""
    app = bench.stack.app_servers[0]
    check = check_strata_hit(app.port, path)
    target = Target(
        f"http://{HOST}:{app.port}{path}",
        {"app": [app.pid], "redis": [bench.stack.cache.pid]},
        proof=("X-Strata", Outcome.PAGE_HIT.value),
    )
    run = bench.measure(target) if check["serves_hits"] else None
    return bench.row("strata_page", "page", "strata", path, check, run)


def strata_full_stack(bench: Bench, path: str) -> dict:
    """The whole stack on a hit: HAProxy's public port, Varnish answers."""
    stack = bench.stack
    check = check_varnish_hit(stack.config.port, path)
    check["evidence"] = f"X-Cache: {'HIT' if check['serves_hits'] else 'not HIT'}"
    target = Target(
        f"http://{HOST}:{stack.config.port}{path}",
        {
            "haproxy": [stack.load_balancer.pid],
            "varnish": [a.pid for a in stack.accelerators],
            "app": [a.pid for a in stack.app_servers],
        },
        # No varnishstat here: HAProxy keeps its connections to Varnish open, and Varnish
        # adds a session's counters to its totals late; the warm-up checks every response.
        proof=("X-Cache", "HIT"),
    )
    run = bench.measure(target) if check["serves_hits"] else None
    return bench.row("strata_edge", "edge", "strata", path, check, run)


def static_varnish(bench: Bench, paths: list[str], pages_file: Path) -> list[dict]:
    """A varnishd of its own serving a static copy of the pages, measured directly."""
    binary = find_program("varnishd")
    if binary is None:
        error = {"error": "varnishd is not installed"}
        return [bench.row("varnish_static", "edge", "reference", p, error) for p in paths]
    origin_port = free_port()
    origin = start_peer(bench.stack, ORIGIN, origin_port, pages_file)
    varnish = StaticVarnish(bench.run_dir, free_port({origin_port}), origin_port, binary)
    rows = []
    try:
        varnish.start()
        varnish.wait_ready()
        for path in paths:
            check = check_varnish_hit(varnish.port, path)
            check["evidence"] = f"X-Cache: {'HIT' if check['serves_hits'] else 'not HIT'}"
            target = Target(
                f"http://{HOST}:{varnish.port}{path}",
                {"varnish": [varnish.pid]},
                proof=("X-Cache", "HIT"),
                varnish_dir=varnish.work_dir,
            )
            run = bench.measure(target) if check["serves_hits"] else None
            rows.append(bench.row("varnish_static", "edge", "reference", path, check, run))
    finally:
        varnish.stop()  # each stops the process it started, by its pid
        origin.stop()
    return rows


def app_server_peer(bench: Bench, peer: Peer, tier: str, role: str, paths, pages_file) -> list:
    """Django's cache middleware or the bare WSGI app, in a Gunicorn of its own."""
    port = free_port()
    server = start_peer(bench.stack, peer, port, pages_file)
    rows = []
    try:
        if peer.kind == "django":
            store_django_pages(port, paths)
            time.sleep(1.1)  # a hit then shows an Expires frozen at least a second ago
        for path in paths:
            check = (check_django_hit if peer.kind == "django" else check_bytes)(port, path)
            target = Target(
                f"http://{HOST}:{port}{path}",
                {"app": [server.pid], "redis": [bench.stack.cache.pid]},
            )
            run = bench.measure(target) if check["serves_hits"] else None
            rows.append(bench.row(peer.key, tier, role, path, check, run))
    finally:
        server.stop()
    return rows


def check_warm(port: int, path: str) -> dict:
    """Three GETs fill the caches; the last must be a 200 rendered by the view."""
    conn = Connection(HOST, port)
    for _ in range(3):
        answer = conn.request("GET", path, headers=SITE_HOST)
    conn.close()
    word = answer.headers.get("x-strata", "")
    return {
        "status": answer.status,
        "serves_hits": answer.status == 200 and word != Outcome.PAGE_HIT,
        "evidence": f"X-Strata: {word}" if word else "rendered",
        "body_bytes": len(answer.body),
        "body_sha256": body_digest(answer.body),
    }


def warm_tier(bench: Bench, paths: list[str]) -> list[dict]:
    """Strata's warm path, its peers and references; Strata first and again last."""
    strata = warm_server(bench, WARM[0], paths)
    rows = [row for spec in WARM[1:] for row in warm_server(bench, spec, paths)]
    console.print("  … Strata again, last")
    for first, again in zip(strata, warm_server(bench, WARM[0], paths), strict=True):
        first["runs_again"] = again["run"]
        first["db_queries_per_request_again"] = again.get("db_queries_per_request")
    return strata + rows


def warm_one(bench: Bench, spec: WarmPeer, server: Gunicorn, path: str) -> dict:
    check = check_warm(server.port, path)
    target = Target(
        f"http://{HOST}:{server.port}{path}",
        {"app": [server.pid], "redis": [bench.stack.cache.pid]},
    )
    run = bench.measure(target) if check["serves_hits"] else None
    return bench.row(spec.key, "warm", spec.role, path, check, run)


def warm_error(bench: Bench, spec: WarmPeer, path: str, error: str) -> dict:
    return bench.row(spec.key, "warm", spec.role, path, {"error": error})


def warm_server(bench: Bench, spec: WarmPeer, paths: list[str]) -> list[dict]:
    """One warm-tier contender, each page in a Gunicorn of its own, its queries counted."""
    if spec.distribution and package_version(spec.distribution) is None:
        error = f"{spec.distribution} is not installed (pip install -e .[bench])"
        return [warm_error(bench, spec, path, error) for path in paths]
    return [warm_page(bench, spec, path) for path in paths]


def warm_page(bench: Bench, spec: WarmPeer, path: str) -> dict:
    """Start the contender's app server, fill its caches, measure ``path``, stop it.

    Queries per request: PostgreSQL's transaction count (one per autocommit query) from
    before the app server started to after it stopped (its connections closed, their
    statistics flushed), over every request it answered, its first fills included.
    """
    url = bench.stack.database.url
    before = db_transactions(url)
    try:
        server = start_peer(bench.stack, spec.peer(path), free_port(), Path("/dev/null"))
    except Exception as exc:  # a peer that fails on this Django: reported, the rest go on
        log = bench.run_dir / "logs" / f"peer-{spec.key}.log"
        tail = log.read_text()[-600:] if log.exists() else ""
        return warm_error(bench, spec, path, f"did not start: {exc} {tail}")
    try:
        row = warm_one(bench, spec, server, path)
    finally:
        server.stop()
    time.sleep(0.5)
    run = row["run"]
    if run:
        transactions = db_transactions(url) - before
        row["db_queries_per_request"] = round(
            transactions / (run["requests"] + run["warm_up"]["requests"]), 3
        )
    return row


# -- ratios and report ------------------------------------------------------------------------


def rps_text(run: dict | None) -> str:
    return f"{run['rps']:.0f} req/s" if run else "[red]not measured[/]"


def strata_figure(row: dict, figure: str = "rps") -> float | None:
    """A row's req/s (or other figure): the mean of its first and last runs if it ran twice."""
    runs = [r for r in (row.get("run"), row.get("runs_again")) if r]
    return statistics.mean(r[figure] for r in runs) if runs else None


def add_ratios(rows: list[dict]) -> dict:
    """Each row's req/s over Strata's on the same tier, the static Varnish's and the floor's."""
    summary: dict = {}
    for path in dict.fromkeys(row["path"] for row in rows):
        mine = [row for row in rows if row["path"] == path]

        def figure(key: str, name: str = "rps", mine=mine) -> float | None:
            found = next((r for r in mine if r["key"] == key), None)
            return strata_figure(found, name) if found else None

        tier_keys = {"edge": "strata_edge", "page": "strata_page", "warm": "strata_warm"}
        strata = {tier: figure(key) for tier, key in tier_keys.items()}
        cpu = "server_cpu_us_per_request"
        strata_cpu = {tier: figure(key, cpu) for tier, key in tier_keys.items()}
        varnish, floor = figure("varnish_static"), figure("bytes")
        for row in mine:
            rps = strata_figure(row)
            row["ratios"] = {
                "to_strata_same_tier": ratio(rps, strata[row["tier"]]),
                "to_varnish_static": ratio(rps, varnish),
                "to_bare_wsgi": ratio(rps, floor),
                # CPU per request moves less than req/s when other work shares the cores.
                "cpu_to_strata_same_tier": ratio(strata_figure(row, cpu), strata_cpu[row["tier"]]),
            }
            if row["role"] == "strata" and row.get("run") and row.get("runs_again"):
                row["drift"] = ratio(row["runs_again"]["rps"], row["run"]["rps"], -1)
        summary[path] = {
            "strata full stack / Varnish static": ratio(strata["edge"], varnish),
            "strata page hit / Django cache middleware": ratio(
                strata["page"], figure("django_alone")
            ),
            "strata page hit / bare WSGI floor": ratio(strata["page"], floor),
            "strata warm / django-cachalot": ratio(strata["warm"], figure("cachalot")),
            "strata warm / django-cacheops": ratio(strata["warm"], figure("cacheops")),
            "strata query cache alone / django-cachalot": ratio(
                figure("strata_qc"), figure("cachalot")
            ),
            "strata query cache alone / django-cacheops": ratio(
                figure("strata_qc"), figure("cacheops")
            ),
            "strata warm / plain Django": ratio(strata["warm"], figure("plain")),
            "CPU per request, Django cache middleware / strata page hit": ratio(
                figure("django_alone", cpu), strata_cpu["page"]
            ),
            "CPU per request, django-cachalot / strata warm": ratio(
                figure("cachalot", cpu), strata_cpu["warm"]
            ),
            "CPU per request, django-cacheops / strata warm": ratio(
                figure("cacheops", cpu), strata_cpu["warm"]
            ),
        }
    return summary


def ratio(a: float | None, b: float | None, shift: float = 0) -> float | None:
    return round(a / b + shift, 3) if a and b else None


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def report(results: dict) -> None:
    settings = results["settings"]
    for name, path in results["pages"].items():
        table = Table(
            title=f"{name} page ({path}): wrk {CONNECTIONS} connections / {THREADS} threads / "
            f"{settings['seconds']:g} s after 1 s of warm-up; app servers Gunicorn, 2 sync "
            f"workers; {results['machine']['cpus']} cores, load average "
            f"{results['load_average_start'][0]:.2f} at the start"
        )
        for column in (
            "tier",
            "contender",
            "who answered",
            "body",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "÷ Strata same tier",
            "÷ Varnish static",
            "÷ bare WSGI",
            "load",
            "CPU µs/req",
            "CPU ÷ Strata",
            "Redis/req",
            "DB q/req",
        ):
            left = column in ("tier", "contender", "who answered")
            table.add_column(column, justify="left" if left else "right")
        for row in (r for r in results["rows"] if r["path"] == path):
            add_table_rows(table, row)
        console.print(table)
    for tier, meaning in TIERS.items():
        console.print(f"  tier {tier}: {meaning}")
    for label, description in CONTENDERS.values():
        console.print(f"  {label}: {description}")
    console.print(
        "÷ columns: req/s over Strata's on the same tier (for Strata, the mean of its runs "
        "before and after the others), over the static Varnish's, over the bare WSGI app's. "
        "load: 1-minute load average before the run. CPU µs/req: user + system time of the "
        "server processes (app server, Redis, Varnish, HAProxy as they apply; not wrk, not "
        "PostgreSQL); CPU ÷ Strata: over Strata's on the same tier. "
        "DB q/req: PostgreSQL transactions (one per autocommit query) over the app "
        "server's life, its first cache fills included."
    )
    for path, ratios in results["ratios"].items():
        console.print(
            f"{path}: " + "; ".join(f"{name} {fmt(value)}" for name, value in ratios.items())
        )


def evidence(row: dict, run: dict) -> str:
    """Who answered: the warm-up's header check, varnishstat, or the pre-run check."""
    warm = run["warm_up"]
    parts = []
    if "answered" in warm:
        value = warm["checked"].split(": ", 1)[1]
        parts.append(f"{value} {warm['answered']}/{warm['requests']}")
    if "varnish_hit_share" in run:
        parts.append(f"varnishstat {run['varnish_hit_share']:.0%} hits")
    if not parts:
        parts.append(row["check"].get("evidence", ""))
    return "; ".join(parts)


def add_table_rows(table: Table, row: dict) -> None:
    check, run = row["check"], row.get("run")
    if "error" in check or run is None:
        reason = check.get("error") or f"not measured: {check.get('evidence')}"
        table.add_row(row["tier"], row["label"], f"[red]{reason[:120]}[/]")
        return
    ratios = row["ratios"]
    table.add_row(
        row["tier"],
        row["label"],
        evidence(row, run),
        f"{check['body_bytes']} {'same' if check['same_body_as_strata'] else 'differs'}",
        *run_cells(run),
        fmt(ratios["to_strata_same_tier"]),
        fmt(ratios["to_varnish_static"], ".3f"),
        fmt(ratios["to_bare_wsgi"]),
        *cost_cells(run, row.get("db_queries_per_request"), ratios["cpu_to_strata_same_tier"]),
    )
    again = row.get("runs_again")
    if again:
        table.add_row(
            "",
            f"  … again, last ({fmt(row.get('drift'), '+.0%')})",
            evidence(row, again),
            "",
            *run_cells(again),
            "",
            "",
            "",
            *cost_cells(again, row.get("db_queries_per_request_again"), None),
        )


def run_cells(run: dict) -> list[str]:
    return [f"{run['rps']:.0f}", fmt(run["p50_ms"]), fmt(run["p90_ms"]), fmt(run["p99_ms"])]


def cost_cells(run: dict, db_queries: float | None, cpu_ratio: float | None) -> list[str]:
    return [
        fmt(run["load_1m_before"], ".1f"),
        str(run["server_cpu_us_per_request"]),
        "" if cpu_ratio is None else fmt(cpu_ratio),
        fmt(run["redis_commands_per_request"], "g"),
        fmt(db_queries, "g"),
    ]


def readme_table(results: dict) -> str:
    """The figures as a Markdown table for the README, the machine in a line above it."""
    machine = results["machine"]
    programs = dict.fromkeys(
        f"{p['implementation']} {p['version']}" for p in machine["programs"] if p["version"] != "-"
    )
    peers = [f"{name} {v}" for name, v in machine["packages"].items() if v and name != "gunicorn"]
    seconds = results["settings"]["seconds"]
    lines = [
        f"Measured {results['started_at'][:10]} by `benchmarks/peers.py` on {machine['cpus']} "
        f"cores ({machine['cpu_model'] or machine['platform']}), load average "
        f"{results['load_average_start'][0]:.2f} at the start; Python {machine['python']}, "
        f"Django {machine['django']}, {', '.join([*programs, *peers])}; {machine['wrk']}, "
        f"{CONNECTIONS} connections, {THREADS} threads, {seconds:g} s a run after 1 s of "
        "warm-up. App servers: Gunicorn, 2 sync workers.",
        "",
        "| page | tier | what answers | req/s | p50 ms | p99 ms "
        "| ÷ Strata, same tier | ÷ Varnish static | ÷ bare WSGI |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    names = {path: name for name, path in results["pages"].items()}
    for row in results["rows"]:
        run = row.get("run")
        label = f"**{row['label']}**" if row["role"] == "strata" else row["label"]
        start = f"| {names[row['path']]} | {row['tier']} | {label} "
        if run is None:
            lines.append(start + "| not measured | | | | | |")
            continue
        ratios = row["ratios"]
        lines.append(
            start + f"| {strata_figure(row):.0f} | {run['p50_ms']:.2f} | {run['p99_ms']:.2f} "
            f"| {fmt(ratios['to_strata_same_tier'])} | {fmt(ratios['to_varnish_static'], '.3f')} "
            f"| {fmt(ratios['to_bare_wsgi'])} |"
        )
    differ = sorted(
        {
            r["label"]
            for r in results["rows"]
            if r.get("run") and not r["check"]["same_body_as_strata"]
        }
    )
    bodies = (
        f"The body differs from Strata's page-cache hit for: {', '.join(differ)}."
        if differ
        else "Every contender served the same body, byte for byte (SHA-256)."
    )
    lines += [
        "",
        "Strata's rows (bold): req/s is the mean of a run before and a run after the others "
        f"of its tier; latencies are the first run's. {bodies}",
    ]
    return "\n".join(lines) + "\n"


# -- main -------------------------------------------------------------------------------------


def measure_all(bench: Bench, pages: dict[str, str]) -> list[dict]:
    """Every contender on every page, tier by tier; Strata first and again last in each."""
    stack, paths = bench.stack, list(pages.values())
    floor_file, static_file = bench.run_dir / "pages.json", bench.run_dir / "static-pages.json"
    capture_pages(stack.app_servers[0].port, paths, floor_file)  # as Strata's page cache has them
    write_static_copy(floor_file, static_file)

    console.print("[bold]page cache[/]: a whole page, straight to an app server")
    strata_page = [strata_page_hit(bench, path) for path in paths]
    rows = list(strata_page)
    rows += app_server_peer(bench, DJANGO_ALONE, "page", "peer", paths, floor_file)
    rows += app_server_peer(bench, BYTES, "page", "reference", paths, floor_file)
    console.print("  … Strata again, last")
    for row in strata_page:
        row["runs_again"] = strata_page_hit(bench, row["path"])["run"]

    console.print("[bold]edge[/]: an accelerator hit")
    strata_edge = [strata_full_stack(bench, path) for path in paths]
    rows += strata_edge
    rows += static_varnish(bench, paths, static_file)
    console.print("  … Strata again, last")
    for row in strata_edge:
        row["runs_again"] = strata_full_stack(bench, row["path"])["run"]

    console.print("[bold]warm[/]: the view runs, its queries cached")
    rows += warm_tier(bench, paths)
    compare_bodies(rows)
    order = {"edge": 0, "page": 1, "warm": 2}
    return sorted(rows, key=lambda row: (paths.index(row["path"]), order[row["tier"]]))


def compare_bodies(rows: list[dict]) -> None:
    """Mark each row whose body is byte for byte the one Strata's page cache served."""
    reference = {
        r["path"]: r["check"].get("body_sha256") for r in rows if r["key"] == "strata_page"
    }
    for row in rows:
        sha = row["check"].get("body_sha256")
        row["check"]["same_body_as_strata"] = bool(sha) and sha == reference.get(row["path"])


def write_static_copy(captured: Path, out: Path) -> None:
    """The captured pages with only a content type and ten minutes of public caching."""
    pages = json.loads(captured.read_text())
    for page in pages.values():
        kept = [(k, v) for k, v in page["headers"] if k.lower() == "content-type"]
        page["headers"] = [*kept, ("Cache-Control", "public, max-age=600")]
    out.write_text(json.dumps(pages))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run (whole seconds)")
    parser.add_argument("--article", action="store_true", help="the newest article too")
    parser.add_argument("--port", type=int, default=24000, help="the stack's base port")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "peers.json")
    args = parser.parse_args()
    require_program("wrk")

    started = time.monotonic()
    results: dict = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "settings": {
            "seconds": args.seconds,
            "warm_up_seconds": 1,
            "wrk_connections": CONNECTIONS,
            "wrk_threads": THREADS,
            "host_header": SITE_HOST["Host"],
            "port": args.port,
        },
    }
    run_dir = Path(tempfile.mkdtemp(prefix="strata-bench-peers-", dir="/tmp"))
    run_dir.chmod(0o755)
    console.print(
        f"[bold]starting the stack[/] on {HOST}:{args.port} ({run_dir}); load average "
        + " ".join(f"{x:.2f}" for x in results["load_average_start"])
    )
    progress = lambda message: console.print(f"  {message}")  # noqa: E731
    stack = start_demo_stack(run_dir, args.port, progress)  # stops what it started if it fails
    try:
        results["machine"] = describe(stack)
        site = site_pages(stack.database.url)
        pages = {"home": "/"}
        if args.article:
            pages["article"] = f"/articles/{site['articles'][0]}/"
        results["pages"] = pages
        results["settle_seconds"] = settle(stack)
        cache = redis.Redis.from_url(stack.cache.url)
        bench = Bench(stack, args, run_dir, cache)
        results["rows"] = measure_all(bench, pages)
        cache.close()
    except BaseException:
        console.print(f"[red]failed[/]: the programs' logs stay in {run_dir / 'logs'}")
        raise
    finally:
        stack.stop()
    shutil.rmtree(run_dir, ignore_errors=True)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["ratios"] = add_ratios(results["rows"])
    results["seconds_total"] = round(time.monotonic() - started, 1)
    results["readme_table"] = readme_table(results)

    report(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    console.print(
        f"wrote {args.json} ({results['seconds_total']:.0f} s in all; load average at the "
        f"end {results['load_average_end'][0]:.2f})"
    )


def settle(stack: Stack) -> float:
    """Vacuum, analyse and checkpoint the freshly seeded database before measuring.

    Otherwise autovacuum and the checkpointer work through the seed's 50000 comments
    during the first runs.
    """
    started = time.monotonic()
    console.print("  vacuuming and checkpointing the seeded database")
    with psycopg.connect(stack.database.url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        with suppress(psycopg.Error):  # only a superuser (or pg_checkpoint) may
            conn.execute("CHECKPOINT")
    return round(time.monotonic() - started, 1)


def describe(stack: Stack) -> dict:
    """The machine and every program's version, with wrk's and the peers'."""
    packages = ("django-strata", "django-cachalot", "django-cacheops", "gunicorn")
    described = machine(stack, packages)
    described["wrk"] = wrk.wrk_version()
    described["executable"] = sys.executable
    return described


if __name__ == "__main__":
    main()
