"""Measure the choices `strata up` makes by default, side by side in one run.

1. App server: Gunicorn vs uWSGI (same workers, same pool), on an uncached home page.
2. Who balances the app servers behind Varnish: a second HAProxy backend vs Varnish's
   round-robin director with probes: throughput of misses, and requests lost while one
   app server is killed under load.
3. The whole stack (the default choice): an anonymous home-page hit vs an uncached home page.

    .venv/bin/python benchmarks/stack_choices.py [--seconds 6] [--json benchmarks/results/stack_choices.json]

Every figure comes from wrk through the load balancer, on this machine, in this run.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from strata.bench.wrk import run_wrk
from strata.stack.probes import http_get
from strata.stack.stack import Stack

from _common import machine, start_demo_stack, write_results  # isort: skip

console = Console(highlight=False, width=160)
PERSONAL = {"Cookie": "sessionid=benchmark-no-such-session"}  # passes Varnish: always rendered


def measure(url: str, seconds: float, connections: int, headers=None) -> dict:
    run_wrk(url, seconds=1, connections=connections, headers=headers)  # warm-up, discarded
    result = run_wrk(url, seconds=seconds, connections=connections, headers=headers)
    return {
        "rps": round(result.rps, 1),
        "p50_ms": result.p50_ms,
        "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms,
        "errors": result.errors,
        "requests": result.requests,
    }


def kill_drill(stack: Stack, seconds: float) -> dict:
    """Uncached load for `seconds`; one app server is SIGKILLed a third of the way in."""
    victim = stack.app_servers[0]

    def kill_later():
        time.sleep(seconds / 3)
        victim.kill()

    killer = threading.Thread(target=kill_later)
    killer.start()
    result = run_wrk(stack.url, seconds=seconds, connections=8, headers=PERSONAL)
    killer.join()
    return {
        "requests": result.requests,
        "failed": result.errors,
        "p99_ms": result.p99_ms,
        "max_ms": result.max_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--port", type=int, default=21000)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/stack_choices.json"))
    args = parser.parse_args()

    run_dir = Path(tempfile.mkdtemp(prefix="strata-bench-", dir="/tmp"))
    run_dir.chmod(0o755)
    results: dict = {
        "machine": machine(),
        "seconds": args.seconds,
    }
    variants = [
        ("gunicorn + haproxy pool", {"app_server": "gunicorn", "pool": "haproxy"}),
        ("uwsgi + haproxy pool", {"app_server": "uwsgi", "pool": "haproxy"}),
        ("gunicorn + varnish director", {"app_server": "gunicorn", "pool": "varnish"}),
    ]
    rows = []
    for label, options in variants:
        console.print(f"[bold]{label}[/]: starting the stack")
        stack = start_demo_stack(run_dir, args.port, **options)
        try:
            home = http_get(stack.config.host, stack.config.port, "/").body.decode()
            author = re.search(r'href="(/authors/[^"]+/)"', home).group(1)
            hit = measure(stack.url, args.seconds, connections=20)
            miss = measure(stack.url, args.seconds, connections=8, headers=PERSONAL)
            light = measure(
                stack.url.rstrip("/") + author, args.seconds, connections=8, headers=PERSONAL
            )
            time.sleep(1)
            drill = kill_drill(stack, args.seconds)
        finally:
            stack.stop()
        rows.append((label, hit, miss, light, drill))
        results[label] = {
            "hit": hit,
            "uncached": miss,
            "uncached_author_page": light,
            "kill_drill": drill,
        }

    table = Table(
        title=f"Home page through the whole stack ({os.cpu_count()} cores, wrk, {args.seconds:.0f} s each)"
    )
    for column in (
        "variant",
        "home hit req/s",
        "hit p50/p99 ms",
        "uncached home req/s",
        "p50/p99 ms",
        "uncached author page req/s",
        "p50/p99 ms",
        "kill drill: failed/requests",
    ):
        table.add_column(column)
    for label, hit, miss, light, drill in rows:
        table.add_row(
            label,
            f"{hit['rps']:.0f}",
            f"{hit['p50_ms']:.2f} / {hit['p99_ms']:.2f}",
            f"{miss['rps']:.0f}",
            f"{miss['p50_ms']:.1f} / {miss['p99_ms']:.1f}",
            f"{light['rps']:.0f}",
            f"{light['p50_ms']:.1f} / {light['p99_ms']:.1f}",
            f"{drill['failed']} / {drill['requests']}",
        )
    console.print(table)
    base = results["gunicorn + haproxy pool"]
    for label, _, miss, light, _ in rows[1:]:
        console.print(
            f"{label} / gunicorn + haproxy pool: uncached home req/s "
            f"{miss['rps'] / base['uncached']['rps']:.2f}, author page req/s "
            f"{light['rps'] / base['uncached_author_page']['rps']:.2f}"
        )
    write_results(args.json, results)
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
