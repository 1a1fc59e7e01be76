"""Two Varnish nodes behind HAProxy: round robin or consistent hashing by URI?

    .venv/bin/python benchmarks/accelerator_balance.py [--requests 6000] [--pages 400]

For each way of spreading requests (``strata up --balance``), one stack with two Varnish
nodes and two app servers runs the same seeded traffic: ``--requests`` anonymous GETs
over ``--pages`` pages of the demo (home, tags, authors, articles, pages of listings)
drawn with a Zipf-like weight, from 4 threads with keep-alive connections. Then one node
is stopped and the same traffic runs again (the load balancer's other node, or the backup
path, takes its share). Reported per mode: the accelerator hit ratio, the requests the app
servers had to answer (Varnish backend fetches, summed over the nodes), requests/s, and
the objects each node holds. Results go to ``benchmarks/results/accelerator_balance.json``.
"""

from __future__ import annotations

import argparse
import http.client
import random
import re
import sys
import threading
import time
from collections import Counter

from _common import RESULTS, machine, use_repository, write_results

use_repository()

from strata.stack.stack import Stack  # noqa: E402
from strata.stack.varnish import varnish_counters  # noqa: E402
from tests.helpers import demo_stack  # noqa: E402

THREADS = 4


def pages(host: str, port: int, count: int) -> list[str]:
    """The demo's pages as its own links name them (plus listing pages), up to ``count``."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    found: list[str] = ["/"]
    queue = ["/"]
    while queue and len(found) < count:
        conn.request("GET", queue.pop(0))
        body = conn.getresponse().read().decode("utf-8", "replace")
        for path in re.findall(r'href="(/(?:articles|tags|authors)/[^"#?]+/)"', body):
            if path not in found and len(found) < count:
                found.append(path)
                queue.append(path)
    found += [f"/?page={n}" for n in range(2, 12)]
    return found[:count]


def traffic(paths: list[str], requests: int, seed: int) -> list[str]:
    """A seeded sequence of paths, the first ones most popular (weight 1/rank)."""
    weights = [1 / (rank + 1) for rank in range(len(paths))]
    return random.Random(seed).choices(paths, weights, k=requests)


def drive(host: str, port: int, sequence: list[str]) -> dict:
    """Send ``sequence`` from THREADS threads; count X-Cache answers and time it."""
    answers: Counter = Counter()
    lock = threading.Lock()

    def worker(part: list[str]) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        mine: Counter = Counter()
        for path in part:
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                mine[response.getheader("X-Cache") or f"status {response.status}"] += 1
            except (OSError, http.client.HTTPException):
                mine["error"] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
        with lock:
            answers.update(mine)

    parts = [sequence[i::THREADS] for i in range(THREADS)]
    threads = [threading.Thread(target=worker, args=(part,)) for part in parts]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    hits = answers.get("HIT", 0)
    return {
        "requests": len(sequence),
        "answers": dict(answers),
        "hit_ratio": round(hits / len(sequence), 4),
        "requests_per_second": round(len(sequence) / seconds),
    }


def varnish_counter(stack: Stack, name: str) -> list[int]:
    """The Varnish counter ``MAIN.<name>`` of each node (0 for a node that is stopped)."""
    return [
        varnish_counters(node.work_dir, [name])[name] if node.running() else 0
        for node in stack.accelerators
    ]


def measure(balance: str, requests: int, page_count: int, seed: int) -> dict:
    with demo_stack(accelerators=2, balance=balance) as stack:
        config = stack.config
        host, port = config.host, config.port
        # Crawled past Varnish (the app pool's port), so the nodes start empty.
        paths = pages(host, config.port_of("pool"), page_count)
        sequence = traffic(paths, requests, seed)
        fetches_before = sum(varnish_counter(stack, "backend_req"))
        both = drive(host, port, sequence)
        both["app_server_requests"] = sum(varnish_counter(stack, "backend_req")) - (fetches_before)
        both["objects_per_node"] = varnish_counter(stack, "n_object")

        stack.accelerators[1].stop()
        time.sleep(3)  # the load balancer marks it down
        fetches_before = sum(varnish_counter(stack, "backend_req"))
        one_down = drive(host, port, sequence)
        one_down["app_server_requests"] = (
            sum(varnish_counter(stack, "backend_req")) - fetches_before
        )
        return {
            "balance": balance,
            "pages": len(paths),
            "both_nodes": both,
            "one_node_down": one_down,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = [
        measure(b, args.requests, args.pages, args.seed) for b in ("roundrobin", "uri-consistent")
    ]
    for result in results:
        both, down = result["both_nodes"], result["one_node_down"]
        print(
            f"{result['balance']:>15}: hit ratio {both['hit_ratio']:.1%}, "
            f"app-server requests {both['app_server_requests']}, "
            f"{both['requests_per_second']} req/s, objects per node {both['objects_per_node']}; "
            f"one node down: hit ratio {down['hit_ratio']:.1%}, "
            f"app-server requests {down['app_server_requests']}"
        )
    out = RESULTS / "accelerator_balance.json"
    write_results(out, {"command": " ".join(sys.argv), "machine": machine(), "results": results})
    print(f"JSON: {out}")


if __name__ == "__main__":
    main()
