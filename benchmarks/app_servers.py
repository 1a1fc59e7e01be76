"""The app server chosen on the tier it serves most: Gunicorn, uWSGI and Granian side by side.

One demo stack (PostgreSQL, Redis, seeded) holds the data. Beside it, each app server
runs twice with 2 workers, as `strata up` runs it (its Program class: same configuration,
same ``strata.stack.wsgi`` application, same environment): once with the demo, once with
a bare WSGI app answering the home page's bytes from memory (``_bytes_wsgi.py``, the
server's own floor). One HAProxy keeps connections to every one of them alive
(``http-reuse always``, no ``http-server-close``; ``maxconn`` = workers, as the stack's
pool). wrk drives each through it (32 connections, 2 threads), four variants:

- ``floor``: the bare app (every response must carry ``X-Strata-Floor: bytes``);
- ``hit``: the demo's page-cache hit (``X-Strata: page-hit`` on every response);
- ``warm``: a render with the page cache bypassed, the query cache and fragments warm
  (``X-Strata-Bench: warm`` with the run's secret; ``X-Strata: bypass: bench warm``);
- ``cold``: a render with every Strata cache off (``bypass: bench cold``).

A response whose header says otherwise is counted apart and the run is marked unproven.
Servers take turns within each variant, and the starting server rotates per round.

    flock /tmp/strata-bench.lock .venv/bin/python benchmarks/app_servers.py [--seconds 10] [--rounds 2]
    flock /tmp/strata-bench.lock .venv/bin/python benchmarks/app_servers.py --smoke

Writes ``benchmarks/results/app_servers.json`` with the machine's description (``--smoke``:
about a second per variant, nothing written unless ``--json`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from strata.bench.wrk import WrkResult, run_wrk_checked
from strata.stack.appserver import APP_SERVERS, UWSGI, AppServer, DjangoProject
from strata.stack.errors import StackError
from strata.stack.haproxy import admin_command, server_column
from strata.stack.ports import free_port
from strata.stack.program import Program, program_version
from strata.stack.stack import Stack

from _app_peers import (  # isort: skip
    HOST,
    SITE_HOST,
    Connection,
    body_digest,
    cpu_seconds,
    process_tree,
)
from _common import ROOT, machine, require_program, start_demo_stack, write_results  # isort: skip

console = Console(highlight=False, width=200)
HERE = Path(__file__).resolve().parent
CONNECTIONS, THREADS, WORKERS = 32, 2, 2
PATH = "/"
FLOOR_HEADER = ("X-Strata-Floor", "bytes")
DIRECT = False  # --direct: wrk straight to each server, no HAProxy between


class UWSGIKeepAlive(UWSGI):
    """uWSGI on ``http11-socket`` (HAProxy keeps its connections), for comparison."""

    keep_alive = True


@dataclass(frozen=True)
class Server:
    """One app server as the benchmark names it, and its Program class."""

    key: str
    label: str
    program: type[AppServer]


SERVERS = (
    Server("gunicorn", "Gunicorn (sync)", APP_SERVERS["gunicorn"]),
    Server("uwsgi-http11", "uWSGI (http11-socket)", UWSGIKeepAlive),
    Server("uwsgi", "uWSGI (http-socket)", APP_SERVERS["uwsgi"]),
    Server("granian", "Granian (WSGI)", APP_SERVERS["granian"]),
)


@dataclass(frozen=True)
class Variant:
    """What one wrk run asks for, and the header every response must carry."""

    key: str
    title: str
    proof: tuple[str, str]
    bench_mode: str | None = None
    floor: bool = False


VARIANTS = (
    Variant("floor", "bare WSGI floor", FLOOR_HEADER, floor=True),
    Variant("hit", "page-cache hit", ("X-Strata", "page-hit")),
    Variant("warm", "warm render", ("X-Strata", "bypass: bench warm"), bench_mode="warm"),
    Variant("cold", "cold render", ("X-Strata", "bypass: bench cold"), bench_mode="cold"),
)


def bare(program: type[AppServer]) -> type[AppServer]:
    """``program`` serving the bare WSGI app directly, not Strata's application."""
    return type(
        f"Bare{program.__name__}",
        (program,),
        {"wsgi_module_app": lambda self: "_bytes_wsgi:application"},
    )


# -- the load balancer ----------------------------------------------------------------------


@dataclass
class Route:
    """One frontend of the benchmark's HAProxy and the app server behind it."""

    name: str
    port: int
    app: AppServer


class Balancer(Program):
    """An HAProxy with one frontend per app server, keeping server connections alive."""

    layer = "load balancer"
    implementation = "HAProxy"
    stop_signal = signal.SIGUSR1

    def __init__(self, run_dir: Path, binary: str, routes: list[Route]):
        super().__init__("bench-haproxy", run_dir, HOST, routes[0].port)
        self.binary, self.routes = binary, routes
        self.config_path = run_dir / "config" / "bench-haproxy.cfg"
        self.admin_socket = run_dir / "bench-haproxy.sock"

    def config(self) -> str:
        """The configuration: the stack's pool timeouts and retries, plus ``http-reuse always``."""
        lines = [
            "global",
            f"    stats socket {self.admin_socket} mode 600 level admin",
            "    maxconn 4096",
            "defaults",
            "    mode http",
            "    option http-keep-alive",
            "    timeout connect 2s",
            "    timeout client 30s",
            "    timeout server 35s",
            "    timeout http-request 10s",
            "    timeout http-keep-alive 10s",
            "    timeout queue 10s",
            "    retries 3",
        ]
        for route in self.routes:
            lines += [
                f"frontend fe_{route.name}",
                f"    bind {HOST}:{route.port}",
                f"    default_backend be_{route.name}",
                f"backend be_{route.name}",
                "    http-reuse always",
                "    retry-on conn-failure empty-response",
                f"    server app {route.app.host}:{route.app.port} maxconn {route.app.workers}",
            ]
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        check = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check.returncode != 0:
            raise StackError(self.name, f"invalid {self.config_path}: {check.stderr.strip()}")

    def argv(self) -> list[str]:
        return [self.binary, "-db", "-f", str(self.config_path)]

    def version(self) -> str:
        return program_version([self.binary, "-v"], lambda s: s.split()[2])

    def healthy(self) -> bool:
        try:
            return "Uptime" in admin_command(self.admin_socket, "show info")
        except OSError:
            return False

    def connections(self, route: Route) -> dict[str, int]:
        """Connections HAProxy opened to ``route``'s server so far, and reuses of idle ones."""
        stat = admin_command(self.admin_socket, "show stat")
        backend = f"be_{route.name}"
        return {
            column: int(server_column(stat, backend, column).get("app") or 0)
            for column in ("connect", "reuse")
        }


# -- one measured run ------------------------------------------------------------------------


@dataclass
class Target:
    """A server and a variant: the URL to drive, the headers to send, who to charge CPU to."""

    server: Server
    variant: Variant
    route: Route
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        """The benchmark's HAProxy frontend for this server, or the server's own (direct)."""
        return self.route.app.port if DIRECT else self.route.port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}"


def check_once(target: Target) -> dict:
    """Prime, then one request: status, proof header, body size and digest."""
    conn = Connection(HOST, target.port)
    for _ in range(2):
        conn.request("GET", PATH, headers=target.headers)
    answer = conn.request("GET", PATH, headers=target.headers)
    conn.close()
    name, value = target.variant.proof
    return {
        "status": answer.status,
        "proof": f"{name}: {answer.headers.get(name.lower())}",
        "proven": answer.status == 200 and answer.headers.get(name.lower()) == value,
        "body_bytes": len(answer.body),
        "body_sha256": body_digest(answer.body),
    }


def worker_split(before: dict[int, float], after: dict[int, float], master: int) -> list[float]:
    """Each worker's share of the workers' CPU over the run (largest first)."""
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after if pid != master}
    total = sum(used.values())
    if total <= 0:
        return []
    return sorted((round(u / total, 2) for u in used.values()), reverse=True)


def per_process_cpu(root: int) -> dict[int, float]:
    """CPU seconds of ``root`` and each process below it."""
    return {pid: cpu_seconds([pid]) for pid in process_tree(root)}


def measure(target: Target, balancer: Balancer, seconds: float, warmup: bool) -> dict:
    """wrk on ``target`` (after a discarded second of warm-up), with its proof and costs."""
    name, value = target.variant.proof
    wrk = dict(connections=CONNECTIONS, threads=THREADS, headers=target.headers, timeout_s=10)
    if warmup:
        run_wrk_checked(target.url, header=name, value=value, seconds=1, **wrk)
    app_pid, lb_pid = target.route.app.pid, balancer.pid
    app_before, lb_before = per_process_cpu(app_pid), cpu_seconds([lb_pid])
    conns_before = balancer.connections(target.route) if not DIRECT else None
    result: WrkResult = run_wrk_checked(
        target.url, header=name, value=value, seconds=seconds, **wrk
    )
    app_after, lb_after = per_process_cpu(app_pid), cpu_seconds([lb_pid])
    conns_after = balancer.connections(target.route) if not DIRECT else None
    requests = max(result.requests, 1)
    app_cpu = sum(app_after.values()) - sum(app_before.get(p, 0.0) for p in app_after)
    opened = conns_after["connect"] - conns_before["connect"] if conns_after and conns_before else 0
    return {
        "rps": round(result.rps, 1),
        "p50_ms": result.p50_ms,
        "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms,
        "max_ms": result.max_ms,
        "requests": result.requests,
        "errors": result.errors,
        "answered": result.answered,
        "others": {str(k): v for k, v in result.others.items()},
        "proven": result.answered == result.requests and result.requests > 0,
        "server_connections_opened": opened,
        "requests_per_server_connection": round(result.requests / opened, 1) if opened else None,
        "server_connection_reuses": (
            conns_after["reuse"] - conns_before["reuse"] if conns_after and conns_before else None
        ),
        "app_cpu_us_per_request": round(1e6 * app_cpu / requests),
        "haproxy_cpu_us_per_request": round(1e6 * (lb_after - lb_before) / requests),
        "worker_cpu_split": worker_split(app_before, app_after, app_pid),
    }


# -- setting it up -----------------------------------------------------------------------


def capture_floor_page(port: int, out: Path) -> None:
    """The home page as a page-cache hit serves it, for the bare app (marked as the floor)."""
    skip = {"server", "date", "connection", "content-length", "transfer-encoding"}
    skip |= {"x-strata", "x-strata-server", "keep-alive"}
    conn = Connection(HOST, port)
    answer = conn.request("GET", PATH, headers=SITE_HOST)
    if answer.headers.get("x-strata") != "page-hit":
        answer = conn.request("GET", PATH, headers=SITE_HOST)
    conn.close()
    if answer.headers.get("x-strata") != "page-hit":
        raise SystemExit(f"no page-cache hit to copy: X-Strata {answer.headers.get('x-strata')}")
    headers = [(k, v) for k, v in answer.raw_headers if k.lower() not in skip]
    page = {"status": "200 OK", "headers": [*headers, FLOOR_HEADER], "body": ""}
    page["body"] = answer.body.decode("latin-1")
    out.write_text(json.dumps({PATH: page}))


def start_app(program: type[AppServer], name: str, run_dir: Path, project, taken) -> AppServer:
    """``program`` with ``WORKERS`` workers on a free port, ready."""
    app = program(name, run_dir, HOST, free_port(taken), project, WORKERS)
    app.start()
    try:
        app.wait_ready(60)
    except BaseException:
        app.stop()
        raise
    return app


def floor_project(stack: Stack, pages: Path) -> DjangoProject:
    """The bare app's project: this directory first, the stack's environment."""
    env = dict(stack.config.project.env)
    env.update(STRATA_BENCH_PAGES=str(pages), PYTHONPATH=str(ROOT / "demo"))
    return DjangoProject(
        directory=HERE, settings_module=stack.config.project.settings_module, env=env
    )


def start_servers(
    stack: Stack, run_dir: Path, haproxy: str, started: list[Program]
) -> list[Target]:
    """Every server twice (demo, bare), one HAProxy in front (last in ``started``, which
    gets every program as it starts); the targets to measure."""
    taken: set[int] = set()
    apps: dict[str, AppServer] = {}
    for server in SERVERS:
        console.print(f"  starting {server.label} (demo)")
        apps[server.key] = start_app(
            server.program, f"bench-{server.key}", run_dir, stack.config.project, taken
        )
        started.append(apps[server.key])
    pages = run_dir / "floor-pages.json"
    capture_floor_page(apps[SERVERS[0].key].port, pages)
    floors: dict[str, AppServer] = {}
    for server in SERVERS:
        console.print(f"  starting {server.label} (bare)")
        floors[server.key] = start_app(
            bare(server.program), f"floor-{server.key}", run_dir, floor_project(stack, pages), taken
        )
        started.append(floors[server.key])
    routes = {}
    for server in SERVERS:
        for kind, app in (("demo", apps[server.key]), ("floor", floors[server.key])):
            key = f"{server.key.replace('-', '_')}_{kind}"
            routes[(server.key, kind)] = Route(key, free_port(taken), app)
    balancer = Balancer(run_dir, haproxy, list(routes.values()))
    started.append(balancer)
    balancer.start()
    balancer.wait_ready()
    secret = stack.purge_secret
    targets = []
    for variant in VARIANTS:
        headers = dict(SITE_HOST)
        if variant.bench_mode:
            headers.update({"X-Strata-Bench": variant.bench_mode, "X-Strata-Bench-Secret": secret})
        for server in SERVERS:
            route = routes[(server.key, "floor" if variant.floor else "demo")]
            targets.append(Target(server, variant, route, headers))
    return targets


def stop_all(started: list[Program]) -> None:
    """Newest first: the balancer (its kept-alive connections close), then the app servers."""
    for program in reversed(started):
        program.stop()


# -- the run -----------------------------------------------------------------------------------


def run(stack: Stack, balancer: Balancer, targets: list[Target], args) -> dict:
    """Every target checked once, then ``args.rounds`` rounds; servers take turns."""
    results: dict = {"servers": {}, "checks": {}}
    for target in targets:
        check = check_once(target)
        results["checks"].setdefault(target.server.key, {})[target.variant.key] = check
        if not check["proven"]:
            console.print(
                f"[red]{target.server.label} {target.variant.key}: {check['proof']}[/] "
                f"(status {check['status']})"
            )
    runs: dict[tuple[str, str], list[dict]] = {}
    for round_index in range(args.rounds):
        for variant in VARIANTS:
            group = [t for t in targets if t.variant is variant]
            shift = round_index % len(group)
            for target in group[shift:] + group[:shift]:
                one = measure(target, balancer, args.seconds, warmup=not args.smoke)
                runs.setdefault((target.server.key, variant.key), []).append(one)
                console.print(
                    f"  round {round_index + 1} {variant.key:5} {target.server.label:22} "
                    f"{one['rps']:8.0f} req/s  p50 {one['p50_ms']:.2f} ms  "
                    f"p99 {one['p99_ms']:.2f} ms  {'proven' if one['proven'] else '[red]NOT proven[/]'}"
                )
    for server in SERVERS:
        entry: dict = {"label": server.label, "variants": {}}
        for variant in VARIANTS:
            entry["variants"][variant.key] = summarize(runs[(server.key, variant.key)])
        floor = entry["variants"]["floor"]["rps"]
        for summary in entry["variants"].values():
            summary["ratio_to_own_floor"] = round(summary["rps"] / floor, 3) if floor else None
        results["servers"][server.key] = entry
    gunicorn = results["servers"]["gunicorn"]["variants"]
    for entry in results["servers"].values():
        for key, summary in entry["variants"].items():
            theirs = gunicorn[key]["rps"]
            summary["ratio_to_gunicorn"] = round(summary["rps"] / theirs, 3) if theirs else None
    return results


def summarize(runs: list[dict]) -> dict:
    """The median of the rounds (req/s, p50, p99), their spread, and every run."""

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    return {
        "rps": round(statistics.median(r["rps"] for r in runs), 1),
        "rps_min": min(r["rps"] for r in runs),
        "rps_max": max(r["rps"] for r in runs),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "proven": all(r["proven"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "runs": runs,
    }


# -- report ----------------------------------------------------------------------------------


def report(results: dict, args) -> None:
    """The table: req/s, p50/p99 and ratios per server and variant."""
    table = Table(
        title=(
            "App servers, wrk straight to each"
            if DIRECT
            else f"App servers through HAProxy (http-reuse always, maxconn {WORKERS})"
        )
        + f", {WORKERS} "
        f"workers each, wrk -t{THREADS} -c{CONNECTIONS} {args.seconds:g} s × {args.rounds} "
        f"round(s), home page"
    )
    for column in ("server", "variant", "req/s", "p50 / p99 ms", "÷ own floor", "÷ Gunicorn"):
        table.add_column(column, justify="left" if column in ("server", "variant") else "right")
    table.add_column("proof", justify="left")
    table.add_column("req/conn · app CPU µs/req · worker split", justify="left")
    for variant in VARIANTS:
        for entry in results["servers"].values():
            s = entry["variants"][variant.key]
            last = s["runs"][-1]
            conns = last["requests_per_server_connection"]
            table.add_row(
                entry["label"],
                variant.title,
                f"{s['rps']:,.0f}",
                f"{s['p50_ms']:.2f} / {s['p99_ms']:.2f}",
                f"{s['ratio_to_own_floor']:.3f}",
                f"{s['ratio_to_gunicorn']:.2f}",
                ("yes" if s["proven"] else "[red]NO[/]") + f" ({s['errors']} errors)",
                f"{conns if conns is not None else '—'} · {last['app_cpu_us_per_request']} · "
                + "/".join(f"{share:.0%}" for share in last["worker_cpu_split"]),
            )
        table.add_section()
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="times every run is repeated")
    parser.add_argument("--port", type=int, default=25000, help="the demo stack's base port")
    parser.add_argument("--smoke", action="store_true", help="1 s per variant, one round")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--direct",
        action="store_true",
        help="wrk straight to each server (as the issue's table), not through HAProxy",
    )
    args = parser.parse_args()
    global DIRECT
    DIRECT = args.direct
    if args.smoke:
        args.seconds, args.rounds = 1, 1
    elif args.json is None:
        args.json = ROOT / "benchmarks" / "results" / "app_servers.json"
    haproxy = require_program("haproxy")
    require_program("wrk")

    run_dir = Path(tempfile.mkdtemp(prefix="strata-bench-appservers-", dir="/tmp"))
    run_dir.chmod(0o755)
    began = time.monotonic()
    console.print(f"[bold]starting the demo stack[/] on {HOST}:{args.port} ({run_dir})")
    stack = start_demo_stack(run_dir, args.port, lambda m: console.print(f"  {m}"), app_servers=1)
    started: list[Program] = []
    try:
        results: dict = {"machine": machine(stack, ["granian", "gunicorn", "pyuwsgi"])}
        results["settings"] = {
            "seconds": args.seconds,
            "rounds": args.rounds,
            "wrk": f"-t{THREADS} -c{CONNECTIONS}",
            "workers_each": WORKERS,
            "path": PATH,
            "haproxy": (
                "none: wrk straight to each server"
                if DIRECT
                else "http-reuse always, option http-keep-alive, maxconn = workers"
            ),
            "load_before": round(os.getloadavg()[0], 2),
        }
        console.print("[bold]starting the app servers[/]")
        targets = start_servers(stack, run_dir, haproxy, started)
        balancer = started[-1]
        results["versions"] = {t.server.key: t.route.app.version() for t in targets}
        results.update(run(stack, balancer, targets, args))
        results["settings"]["load_after"] = round(os.getloadavg()[0], 2)
    except BaseException:
        console.print(f"[red]failed[/]: the logs stay in {run_dir / 'logs'}")
        stop_all(started)
        stack.stop()
        raise
    stop_all(started)
    stack.stop()
    shutil.rmtree(run_dir, ignore_errors=True)
    results["seconds_total"] = round(time.monotonic() - began, 1)
    report(results, args)
    if args.json is not None:
        write_results(args.json, results)
        console.print(f"wrote {args.json} ({results['seconds_total']:.0f} s in all)")


if __name__ == "__main__":
    main()
