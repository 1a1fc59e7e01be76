"""A full-stack accelerator hit against HAProxy → Varnish serving a static copy (issue 18).

One run, side by side, wrk with the same threads, connections and duration for each,
the variants interleaved round by round (other load on the machine then hits them alike):

1. ``varnish static``: a Varnish of its own with a tiny VCL, serving the demo home page's
   bytes as a cached object (a backend in this script answers once; Content-Type and
   Cache-Control only).
2. ``haproxy → varnish static``: a minimal HAProxy (no logging, no rules) in front of it.
3. ``strata full stack``: an anonymous home-page hit through Strata's HAProxy and Varnish
   (``strata up``'s templates, the demo on a stack of its own).
4. ``strata varnish direct``: the same object from Strata's Varnish, without HAProxy
   (the Host and X-Forwarded-Proto HAProxy would send, so that it is the same object).

Each variant proves what it measured: a sample response says ``X-Cache: HIT`` (and
``X-Strata: edge-hit`` for Strata); in a 1 s wrk run under the same load (the warm-up),
every response said ``X-Cache: HIT`` (wrk's ``response()`` check); during the measured
runs no request reached the static backend or an app server (Strata's app pool counts
only the load balancer's readiness checks, about one a second). Varnish's
``MAIN.cache_hit`` is reported too. The CPU time each process used per request (HAProxy,
Varnish) is reported beside the figures: the stable part of the comparison when the
machine is shared.

    flock /tmp/strata-bench.lock .venv/bin/python benchmarks/full_stack_hit.py [--seconds 10] [--rounds 3] [--smoke]

Writes ``benchmarks/results/full_stack_hit.json`` (``--out``; ``--smoke``: 1 s, one round,
no file unless ``--out`` is given) with the machine's description.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rich.console import Console
from rich.table import Table

from strata.bench.wrk import run_wrk, run_wrk_checked
from strata.stack.haproxy import server_column
from strata.stack.ports import free_port
from strata.stack.probes import http_get
from strata.stack.program import Program
from strata.stack.varnish import varnish_counters

from _app_peers import cpu_seconds, process_tree  # isort: skip
from _common import RESULTS, machine, require_program, start_demo_stack, write_results  # isort: skip

console = Console(highlight=False, width=160)
HOST = "127.0.0.1"
PATH = "/"

STATIC_VCL = """vcl 4.1;
# The reference: a static copy of the page, fetched once, then a hit. Nothing else.
backend static {{ .host = "{host}"; .port = "{port}"; }}
sub vcl_recv {{
    if (req.url == "/-/varnish-health") {{ return (synth(200, "OK")); }}
}}
sub vcl_backend_response {{ set beresp.ttl = 1h; }}
sub vcl_deliver {{
    if (obj.hits > 0) {{ set resp.http.X-Cache = "HIT"; }} else {{ set resp.http.X-Cache = "MISS"; }}
}}
"""

STATIC_HAPROXY = """global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend public
    bind {host}:{port}
    default_backend varnish
backend varnish
    server static {host}:{varnish_port}
"""


class StaticBackend:
    """An HTTP server in this process answering ``body`` (a cacheable 200); it counts."""

    def __init__(self, body: bytes, port: int):
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's name)
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "public, s-maxage=3600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.port = port
        self.server = ThreadingHTTPServer((HOST, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StaticVarnish(Program):
    """varnishd with the reference VCL: the static copy and nothing else."""

    layer = "reference accelerator"
    implementation = "Varnish"

    def __init__(self, run_dir: Path, port: int, binary: str, backend_port: int):
        super().__init__("static-varnish", run_dir, HOST, port)
        self.binary, self.backend_port = binary, backend_port
        self.vcl_path = run_dir / "config" / "static.vcl"
        self.work_dir = run_dir / "static-varnish"

    def prepare(self) -> None:
        self.vcl_path.parent.mkdir(parents=True, exist_ok=True)
        self.vcl_path.write_text(STATIC_VCL.format(host=HOST, port=self.backend_port))
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def argv(self) -> list[str]:
        return [self.binary, "-F", "-j", "none", "-n", str(self.work_dir)] + [
            "-a",
            f"{HOST}:{self.port}",
            "-f",
            str(self.vcl_path),
            "-s",
            "malloc,64m",
        ]

    def healthy(self) -> bool:
        try:
            return http_get(HOST, self.port, "/-/varnish-health", timeout=2).status == 200
        except OSError:
            return False


class StaticHAProxy(Program):
    """HAProxy with the least configuration that balances HTTP: no logging, no rules."""

    layer = "reference load balancer"
    implementation = "HAProxy"

    def __init__(self, run_dir: Path, port: int, binary: str, varnish_port: int):
        super().__init__("static-haproxy", run_dir, HOST, port)
        self.binary, self.varnish_port = binary, varnish_port
        self.config_path = run_dir / "config" / "static-haproxy.cfg"

    def prepare(self) -> None:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            STATIC_HAPROXY.format(host=HOST, port=self.port, varnish_port=self.varnish_port)
        )

    def argv(self) -> list[str]:
        return [self.binary, "-db", "-f", str(self.config_path)]

    def healthy(self) -> bool:
        try:
            return http_get(HOST, self.port, "/-/varnish-health", timeout=2).status == 200
        except OSError:
            return False


class Variant:
    """One thing wrk measures: a URL, the headers to send, the processes it costs, and how
    to prove that every request was a Varnish hit."""

    def __init__(self, key, label, url, headers, processes, varnish_dir, **proof):
        self.key, self.label, self.url, self.headers = key, label, url, headers
        self.processes = processes  # name → the Program whose process tree is charged
        self.varnish_dir = varnish_dir
        self.proof = proof
        self.runs: list[dict] = []


def sample(variant: Variant) -> dict:
    """Two GETs as wrk sends them; the second must be a hit."""
    port = int(variant.url.split(":")[2].split("/")[0])
    answer = None
    for _ in range(2):
        answer = http_get(HOST, port, PATH, headers=variant.headers)
    headers = answer.headers  # lower-case names
    return {
        "status": answer.status,
        "x_cache": headers.get("x-cache"),
        "x_strata": headers.get("x-strata"),
        "body_bytes": len(answer.body),
        "header_bytes": sum(len(k) + len(v) + 4 for k, v in answer.headers.items()),
    }


def app_requests(stack) -> int:
    """Requests the app-server pool has answered so far (HAProxy's per-server totals)."""
    totals = server_column(stack.load_balancer.admin("show stat"), "app_pool", "stot")
    return sum(int(v or 0) for v in totals.values())


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy so far (all cores, from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wrk_cpu_seconds() -> float:
    """CPU time of this process's finished children (wrk, once ``run_wrk`` waited)."""
    times = os.times()
    return times.children_user + times.children_system


def measure(variant: Variant, seconds: float, threads: int, connections: int, counted) -> dict:
    """One wrk run of ``variant``, with its proof and the CPU each process used."""
    pids = {name: process_tree(p.pid) for name, p in variant.processes.items()}
    before_cpu = {name: cpu_seconds(p) for name, p in pids.items()}
    before_hits = varnish_counters(variant.varnish_dir, ["cache_hit", "cache_miss"])
    before_other = counted()
    before_busy, before_wrk = machine_busy_seconds(), wrk_cpu_seconds()
    result = run_wrk(
        variant.url,
        seconds=seconds,
        connections=connections,
        threads=threads,
        headers=variant.headers,
    )
    busy, wrk_cpu = machine_busy_seconds() - before_busy, wrk_cpu_seconds() - before_wrk
    after_other = counted()
    time.sleep(0.5)  # Varnish's workers add their hits to the counters when a job ends
    after_hits = varnish_counters(variant.varnish_dir, ["cache_hit", "cache_miss"])
    cpu = {
        name: round((cpu_seconds(p) - before_cpu[name]) / max(result.requests, 1) * 1e6, 1)
        for name, p in pids.items()
    }
    hits = after_hits["cache_hit"] - before_hits["cache_hit"]
    charged = sum(cpu.values()) * result.requests / 1e6 + wrk_cpu
    cpu["wrk"] = round(wrk_cpu / max(result.requests, 1) * 1e6, 1)
    return {
        "rps": round(result.rps, 1),
        "requests": result.requests,
        "errors": result.errors,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "varnish_hits": hits,
        "varnish_misses": after_hits["cache_miss"] - before_hits["cache_miss"],
        "backend_requests": after_other - before_other,
        "cpu_us_per_request": cpu,
        # Cores busy with anything else meanwhile (the rest of the stack, other users).
        "other_cores": round(max(busy - charged, 0) / result.seconds, 2),
    }


def proven(variant: Variant, run: dict, seconds: float) -> bool:
    """Every request a hit: under the same load, every response said ``X-Cache: HIT``;
    wrk saw no error; nothing reached a backend but the load balancer's readiness checks
    (Strata: about one a second). Varnish's own hit counter is reported beside it, but
    its workers add to it in batches (a connection HAProxy keeps open holds them back)."""
    check = variant.proof["checked"]
    allowed = variant.proof.get("checks_per_second", 0) * (seconds + 2) + 2
    return (
        check["errors"] == 0
        and check["requests"] > 0
        and check["x_cache_hit"] == check["requests"]
        and run["errors"] == 0
        and run["backend_requests"] <= allowed
    )


def summary(variant: Variant, seconds: float) -> dict:
    rps = [r["rps"] for r in variant.runs]
    cpu_names = variant.runs[0]["cpu_us_per_request"].keys()
    return {
        "label": variant.label,
        "rps_median": round(statistics.median(rps), 1),
        "rps_max": max(rps),
        "cpu_us_per_request_median": {
            name: round(statistics.median(r["cpu_us_per_request"][name] for r in variant.runs), 1)
            for name in cpu_names
        },
        "proven": all(proven(variant, r, seconds) for r in variant.runs),
        "runs": variant.runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="times every variant is run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--port", type=int, default=24400, help="the demo stack's base port")
    parser.add_argument("--smoke", action="store_true", help="1 s per variant, one round")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.rounds = 1, 1
    elif args.out is None:
        args.out = RESULTS / "full_stack_hit.json"
    varnishd, haproxy = require_program("varnishd"), require_program("haproxy")
    require_program("wrk")

    run_dir = Path(tempfile.mkdtemp(prefix="strata-bench-fullhit-", dir="/tmp"))
    run_dir.chmod(0o755)
    console.print(f"[bold]starting the demo stack[/] on {HOST}:{args.port} ({run_dir})")
    stack = start_demo_stack(run_dir, args.port, lambda m: console.print(f"  {m}"))
    started: list[Program] = []
    backend = None
    try:
        varnish, balancer = stack.accelerators[0], stack.load_balancer
        site = {"Host": f"{balancer.host}:{balancer.port}", "X-Forwarded-Proto": "http"}
        page = None
        for _ in range(3):  # a miss, then the copy every hit serves
            page = http_get(balancer.host, balancer.port, PATH)
        body = page.body
        taken = set(stack.config.port_of(r) for r in ("varnish", "pool"))
        backend = StaticBackend(body, free_port(taken))
        static_varnish = StaticVarnish(run_dir, free_port(taken), varnishd, backend.port)
        static_haproxy = StaticHAProxy(run_dir, free_port(taken), haproxy, static_varnish.port)
        for program in (static_varnish, static_haproxy):
            program.start()
            started.append(program)
            program.wait_ready()
        variants = [
            Variant(
                "varnish_static",
                "varnish static",
                f"http://{HOST}:{static_varnish.port}{PATH}",
                {},
                {"varnish": static_varnish},
                static_varnish.work_dir,
            ),
            Variant(
                "haproxy_varnish_static",
                "haproxy → varnish static",
                f"http://{HOST}:{static_haproxy.port}{PATH}",
                {},
                {"haproxy": static_haproxy, "varnish": static_varnish},
                static_varnish.work_dir,
            ),
            Variant(
                "strata_full_stack",
                "strata full stack (hit)",
                stack.url.rstrip("/") + PATH,
                {},
                {"haproxy": balancer, "varnish": varnish},
                varnish.work_dir,
                checks_per_second=len(stack.accelerators),
            ),
            Variant(
                "strata_varnish_direct",
                "strata varnish direct (hit)",
                f"http://{varnish.host}:{varnish.port}{PATH}",
                site,
                {"varnish": varnish},
                varnish.work_dir,
                checks_per_second=len(stack.accelerators),
            ),
        ]
        samples = {v.key: sample(v) for v in variants}
        for key, answer in samples.items():
            console.print(f"  {key}: {answer}")
        counters = {
            "varnish_static": lambda: backend.requests,
            "haproxy_varnish_static": lambda: backend.requests,
            "strata_full_stack": lambda: app_requests(stack),
            "strata_varnish_direct": lambda: app_requests(stack),
        }
        load_before = round(os.getloadavg()[0], 2)
        checked = {}
        for variant in variants:  # warm-up: every response under load must be a hit
            check = run_wrk_checked(
                variant.url,
                header="X-Cache",
                value="HIT",
                seconds=1,
                connections=args.connections,
                threads=args.threads,
                headers=variant.headers,
            )
            checked[variant.key] = {
                "requests": check.requests,
                "x_cache_hit": check.answered,
                "other_x_cache": {str(k): v for k, v in check.others.items()},
                "errors": check.errors,
            }
            variant.proof["checked"] = checked[variant.key]
        for round_no in range(args.rounds):
            for variant in variants:
                run = measure(
                    variant, args.seconds, args.threads, args.connections, counters[variant.key]
                )
                variant.runs.append(run)
                console.print(
                    f"  round {round_no + 1} {variant.label}: {run['rps']:.0f} req/s, "
                    f"cpu µs/req {run['cpu_us_per_request']}, other cores {run['other_cores']}"
                )
        results = report(variants, samples, args, stack, load_before)
    finally:
        for program in reversed(started):
            program.stop()
        if backend is not None:
            backend.stop()
        stack.stop()
    if args.out is not None:
        write_results(args.out, results)
        console.print(f"wrote {args.out}")
    if not all(v["proven"] for v in results["variants"].values()):
        raise SystemExit("a variant did not prove that it measured Varnish hits (see above)")
    shutil.rmtree(run_dir, ignore_errors=True)


def report(variants: list[Variant], samples: dict, args, stack, load_before: float) -> dict:
    """Print the table and the ratios; the results for the JSON file."""
    summaries = {v.key: summary(v, args.seconds) for v in variants}
    rps = {key: s["rps_median"] for key, s in summaries.items()}
    ratios = {
        "full_stack / haproxy→varnish static": rps["strata_full_stack"]
        / rps["haproxy_varnish_static"],
        "strata varnish direct / varnish static": rps["strata_varnish_direct"]
        / rps["varnish_static"],
        "haproxy→varnish static / varnish static": rps["haproxy_varnish_static"]
        / rps["varnish_static"],
        "full_stack / strata varnish direct": rps["strata_full_stack"]
        / rps["strata_varnish_direct"],
    }
    ratios = {k: round(v, 3) for k, v in ratios.items()}
    by_key = {v.key: v for v in variants}
    # The same ratio within each round (its variants ran back to back): less exposed to
    # load that came and went between rounds.
    paired = [
        round(full["rps"] / static["rps"], 3)
        for full, static in zip(
            by_key["strata_full_stack"].runs, by_key["haproxy_varnish_static"].runs, strict=True
        )
    ]
    best = (
        summaries["strata_full_stack"]["rps_max"] / summaries["haproxy_varnish_static"]["rps_max"]
    )
    ratios["full_stack / haproxy→varnish static, each round"] = paired
    ratios["full_stack / haproxy→varnish static, median of rounds"] = statistics.median(paired)
    ratios["full_stack / haproxy→varnish static, best round of each"] = round(best, 3)
    table = Table(
        title=f"Home page ({samples['strata_full_stack']['body_bytes']} bytes) as a Varnish hit: "
        f"wrk -t{args.threads} -c{args.connections} {args.seconds:.0f} s × {args.rounds} rounds, "
        f"{os.cpu_count()} cores"
    )
    for column in (
        "variant",
        "req/s (median)",
        "all rounds",
        "HAProxy µs CPU/req",
        "Varnish µs CPU/req",
        "wrk µs CPU/req",
        "other cores busy",
        "response header bytes",
        "proof",
    ):
        table.add_column(column)
    for variant in variants:
        s = summaries[variant.key]
        cpu = s["cpu_us_per_request_median"]
        last = variant.runs[-1]
        table.add_row(
            variant.label,
            f"{s['rps_median']:.0f}",
            " ".join(f"{r['rps']:.0f}" for r in variant.runs),
            f"{cpu['haproxy']:.1f}" if "haproxy" in cpu else "—",
            f"{cpu['varnish']:.1f}",
            f"{cpu['wrk']:.1f}",
            " ".join(f"{r['other_cores']:.2f}" for r in variant.runs),
            str(samples[variant.key]["header_bytes"]),
            ("yes" if s["proven"] else "[red]NO[/]")
            + f" (X-Cache: HIT {variant.proof['checked']['x_cache_hit']}"
            + f"/{variant.proof['checked']['requests']}; backend {last['backend_requests']})",
        )
    console.print(table)
    for name, value in ratios.items():
        shown = " ".join(f"{x:.2f}" for x in value) if isinstance(value, list) else f"{value:.2f}"
        console.print(f"  {name}: {shown}")
    return {
        "machine": machine(stack),
        "settings": {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "wrk": f"-t{args.threads} -c{args.connections}",
            "path": PATH,
            "command": "flock /tmp/strata-bench.lock .venv/bin/python benchmarks/full_stack_hit.py"
            + (" --smoke" if args.smoke else f" --seconds {args.seconds:g} --rounds {args.rounds}"),
            "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 2),
        },
        "samples": samples,
        "checked_under_load": {v.key: v.proof["checked"] for v in variants},
        "variants": summaries,
        "ratios": ratios,
        "target": "strata full stack ≥ 0.9 × haproxy → varnish static",
    }


if __name__ == "__main__":
    main()
