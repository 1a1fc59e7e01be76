"""One host or several: requests/s through the load balancers, and the purge window.

    .venv/bin/python benchmarks/hosts_compare.py [--seconds 10] [--writes 40]

Two stacks of the demo run one after the other in the same run, with the same programs
and the same counts (2 Varnish nodes, 2 app servers of 2 workers, Redis, PostgreSQL):

* one host: everything on 127.0.0.1 behind one HAProxy (``strata up --accelerators 2``);
* several hosts: ``strata up --hosts 2``: every program in a network namespace of its own
  on a private bridge, two HAProxy load balancers, and a streaming replica that
  anonymous reads go to.

For each: wrk drives the front page and an article through the load balancers for
``--seconds`` (on several hosts one wrk per load balancer at the same time, each with
half the connections), then ``--writes`` comments are posted through the first load
balancer and every Varnish node is polled (every 5 ms, with the headers the load balancer sends) until
it serves the new comment; the purge window of a write is the time from the response to
the POST to the moment the last node served it. The machine is the same for both (2
cores here): the hosts share its CPUs, so this measures what the network hops and the
second load balancer cost, not what more machines would add. Results go to
``benchmarks/results/hosts_compare.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time

from _common import RESULTS, machine, require_program, use_repository, write_results

use_repository()

from strata.bench.stats import percentile  # noqa: E402
from strata.bench.wrk import run_wrk  # noqa: E402
from strata.stack.hosts import namespaces_available  # noqa: E402
from tests.helpers import Client, demo_stack  # noqa: E402
from tests.scenarios.multihost.helpers import an_article, as_sent, post_comment  # noqa: E402

CONNECTIONS = 16


def drive(stack, paths: list[str], seconds: int) -> dict:
    """wrk on ``paths`` through every load balancer at once; summed requests/s."""
    balancers = stack.load_balancers
    host = f"{balancers[0].host}:{balancers[0].port}"
    results = []
    lock = threading.Lock()

    def one(url: str, connections: int) -> None:
        result = run_wrk(
            url,
            seconds=seconds,
            connections=connections,
            threads=1,
            headers={"Host": host},
        )
        with lock:
            results.append(result)

    jobs = []
    per_job = max(1, CONNECTIONS // (len(balancers) * len(paths)))
    for lb in balancers:
        for path in paths:
            jobs.append(
                threading.Thread(target=one, args=(f"http://{lb.host}:{lb.port}{path}", per_job))
            )
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    requests = sum(r.requests for r in results)
    seconds_run = max(r.seconds for r in results)
    return {
        "requests": requests,
        "requests_per_s": round(requests / seconds_run, 1),
        "errors": sum(r.errors for r in results),
        "p99_ms_worst_job": max(r.p99_ms for r in results),
        "wrk_jobs": len(results),
    }


def purge_windows(stack, writes: int) -> list[float]:
    """Seconds from each POST's response until every Varnish node serves the comment."""
    lb = stack.load_balancer
    host = as_sent(stack)
    writer = Client(lb.host, lb.port, timeout=10)
    article = an_article(writer)
    nodes = [Client(v.host, v.port, timeout=5) for v in stack.accelerators]
    windows = []
    for _ in range(writes):
        for node in nodes:
            node.get(article, headers=host)  # each node holds the page before the write
        words = post_comment(stack, article, writer)
        posted = time.monotonic()
        pending = list(nodes)
        while pending:
            pending = [n for n in pending if words not in n.get(article, headers=host).text]
            if pending:
                if time.monotonic() - posted > 30:
                    raise RuntimeError("a node did not serve the write within 30 s")
                time.sleep(0.005)
        windows.append(time.monotonic() - posted)
    return windows


def measure(name: str, options: dict, seconds: int, writes: int) -> dict:
    with demo_stack(**options) as stack:
        lb = stack.load_balancer
        article = an_article(Client(lb.host, lb.port))
        load = drive(stack, ["/", article], seconds)
        windows = purge_windows(stack, writes)
    ms = [w * 1000 for w in windows]
    summary = {
        "topology": name,
        "options": options,
        **load,
        "purge_window_ms": {
            "writes": len(ms),
            "p50": round(statistics.median(ms), 1),
            "p99": round(percentile(ms, 0.99), 1),
            "max": round(max(ms), 1),
        },
    }
    print(json.dumps(summary), flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--writes", type=int, default=40)
    args = parser.parse_args()
    require_program("wrk")
    available, reason = namespaces_available()
    several = {"hosts": 2, "workers": 2, "pgbouncer": True}  # as strata up --hosts 2 runs
    if not available:
        print(f"note: {reason}; several hosts run on loopback addresses", file=sys.stderr)
        several["namespaces"] = False
    one = {"app_servers": 2, "accelerators": 2, "workers": 2}
    results = [
        measure("one host", one, args.seconds, args.writes),
        measure("several hosts", several, args.seconds, args.writes),
    ]
    base, multi = results
    report = {
        "command": "python benchmarks/hosts_compare.py "
        f"--seconds {args.seconds} --writes {args.writes}",
        "results": results,
        "ratios (several / one)": {
            "requests_per_s": round(multi["requests_per_s"] / base["requests_per_s"], 2),
            "purge_window_p99": round(
                multi["purge_window_ms"]["p99"] / base["purge_window_ms"]["p99"], 2
            ),
        },
    }
    report["machine"] = machine()
    write_results(RESULTS / "hosts_compare.json", report)
    print(json.dumps(report["ratios (several / one)"]))


if __name__ == "__main__":
    main()
