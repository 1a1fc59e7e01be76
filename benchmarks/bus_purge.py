"""The invalidation bus beside today's direct purge: the purge window, and the purger's
throughput.

    .venv/bin/python benchmarks/bus_purge.py [--writes 200] [--entries 20000] [--smoke]

One run, one machine, real programs: a redis-server and varnishd with Strata's VCL (the
xkey vmod) in front of the edge tests' origin (``tests.edge.helpers.running_edge``).

1. **Purge window**: a page tagged with a fresh tag is put in Varnish; the tag's version
   is bumped as a commit's ``on_commit`` does; the time until Varnish no longer answers
   the page from its cache (``X-Cache`` not ``HIT``, polled back to back) is the window.
   *Bus*: the bump appends to the log (one script) and a :class:`BusPurger` delivers it,
   running as ``strata_purger`` runs it (``run()``, blocking reads of 0.2 s). *Direct*:
   a plain bump, then the writer's own :class:`strata.edge.purge.Purger` (what an app
   process does without the bus). p50/p99/max over ``--writes`` writes each, interleaved.
2. **Throughput**: ``--entries`` log entries of 5 fresh tags each are appended, then
   ``BusPurger.deliver_once()`` is timed: tags per second delivered (first purges; the
   second purges are ``PURGE_DELAY`` later and left out), to one and to two nodes.

Results go to ``benchmarks/results/bus_purge.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from _common import RESULTS, machine, use_repository, write_results

use_repository()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from strata.bench.stats import percentile  # noqa: E402
from strata.bus import bus_log  # noqa: E402
from strata.bus.purger import BusPurger  # noqa: E402
from strata.edge.purge import Purger  # noqa: E402
from strata.tags.stores import version_store  # noqa: E402
from tests.bus.helpers import running_redis  # noqa: E402
from tests.edge.helpers import HOST, SECRET, running_edge  # noqa: E402

TAGS_PER_ENTRY = 5
POLL_LIMIT = 10.0  # seconds a page may stay cached before a write counts as lost


def configured(redis_url: str, edges, delay: float):
    """Django settings whose cache is the Redis (a fresh prefix) and whose accelerators
    are ``edges``."""
    return override_settings(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": f"b{uuid.uuid4().hex[:8]}",
            }
        },
        STRATA={
            **settings.STRATA,
            "ACCELERATORS": [edge.url for edge in edges],
            "PURGE_SECRET": SECRET,
            "PURGE_DELAY": delay,
        },
    )


def summary(seconds: list[float], lost: int) -> dict:
    ms = [s * 1000 for s in seconds]
    return {
        "writes": len(seconds) + lost,
        "lost": lost,
        "p50_ms": round(percentile(ms, 0.50), 2) if ms else None,
        "p99_ms": round(percentile(ms, 0.99), 2) if ms else None,
        "max_ms": round(max(ms), 2) if ms else None,
    }


def x_cache(edge, path: str) -> str:
    """``X-Cache`` of ``GET path`` from ``edge``, the request sent in one packet (an HTTP
    client that writes headers and body apart waits out a delayed ACK: 40 ms a poll)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "x-cache":
            return value.strip()
    return ""


def gone_after(edge, path: str, started: float) -> float | None:
    """Seconds from ``started`` until ``edge`` stops answering ``path`` from its cache."""
    while time.perf_counter() - started < POLL_LIMIT:
        if x_cache(edge, path) != "HIT":
            return time.perf_counter() - started
    return None


def purge_windows(redis_url: str, writes: int) -> dict:
    """The purge window through the bus and through a direct purge, interleaved."""
    with running_edge() as edge, configured(redis_url, [edge], delay=2.0):
        log = bus_log()
        store = version_store("default")
        bus = BusPurger(log, [edge.url], SECRET, 2.0, 3600)
        bus.deliver_once()  # the node's first ban and position
        stop = threading.Event()
        runner = threading.Thread(target=bus.run, args=(stop,), daemon=True)
        runner.start()
        direct = Purger([edge.url], SECRET, 2.0)
        found: dict[str, list[float]] = {"bus": [], "direct": []}
        lost = {"bus": 0, "direct": 0}
        prefix = uuid.uuid4().hex[:8]
        try:
            for index in range(writes):
                for way in ("bus", "direct"):
                    tag = f"w{prefix}.{way}.{index}"
                    path = f"/{prefix}/{way}/{index}?xkey={tag}"
                    edge.get(path)
                    assert x_cache(edge, path) == "HIT"
                    started = time.perf_counter()
                    if way == "bus":
                        store.bump_logged([tag])
                    else:
                        store.bump([tag])
                        direct.purge([tag])
                    took = gone_after(edge, path, started)
                    if took is None:
                        lost[way] += 1
                    else:
                        found[way].append(took)
        finally:
            stop.set()
            runner.join(5)
            direct.close(timeout=2)
    return {way: summary(found[way], lost[way]) for way in found}


def throughput(redis_url: str, nodes: int, entries: int) -> dict:
    """Tags per second that ``deliver_once`` sends to ``nodes`` nodes from a backlog."""
    with contextlib.ExitStack() as stack:
        edges = [stack.enter_context(running_edge()) for _ in range(nodes)]
        stack.enter_context(configured(redis_url, edges, delay=600.0))
        log = bus_log()
        purger = BusPurger(log, [e.url for e in edges], SECRET, 600.0, 3600)
        stack.callback(purger.close)
        purger.deliver_once()  # the nodes' first ban and positions
        prefix = uuid.uuid4().hex[:8]
        pipe = log.client.pipeline(transaction=False)
        for index in range(entries):
            tags = " ".join(f"t{prefix}.{index}.{k}" for k in range(TAGS_PER_ENTRY))
            pipe.xadd(log.log_key, {"t": tags})
            if index % 1000 == 999:
                pipe.execute()
        pipe.execute()
        before = log.status()["stats"]
        started = time.perf_counter()
        purger.deliver_once()
        seconds = time.perf_counter() - started
        after = log.status()
        assert all(node["behind"] == 0 for node in after["nodes"].values()), after["nodes"]
        tags = entries * TAGS_PER_ENTRY
        return {
            "nodes": nodes,
            "entries": entries,
            "tags": tags,
            "seconds": round(seconds, 3),
            "tags_per_second": round(tags / seconds),
            "entries_per_second": round(entries / seconds),
            "batches": after["stats"]["batches"] - before["batches"],
            "requests": after["stats"]["requests"] - before["requests"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200, help="writes per way (window)")
    parser.add_argument("--entries", type=int, default=20_000, help="backlog (throughput)")
    parser.add_argument("--smoke", action="store_true", help="a run of a few seconds")
    parser.add_argument("--out", type=Path, default=RESULTS / "bus_purge.json")
    args = parser.parse_args()
    if args.smoke:
        args.writes, args.entries = 5, 500
    logging.getLogger("strata.bus").setLevel(logging.WARNING)  # one line per ban otherwise
    with running_redis() as server:
        windows = purge_windows(server.url, args.writes)
        rates = [throughput(server.url, nodes, args.entries) for nodes in (1, 2)]

    print(f"purge window, commit → page gone from Varnish ({args.writes} writes each):")
    print(f"{'way':<28}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'lost':>6}")
    names = {"bus": "bus (log + purger)", "direct": "direct (writer's Purger)"}
    for way, row in windows.items():
        print(
            f"{names[way]:<28}{row['p50_ms']!s:>10}{row['p99_ms']!s:>10}"
            f"{row['max_ms']!s:>10}{row['lost']:>6}"
        )
    ratio = None
    if windows["bus"]["p50_ms"] and windows["direct"]["p50_ms"]:
        ratio = round(windows["bus"]["p50_ms"] / windows["direct"]["p50_ms"], 2)
        print(f"bus / direct p50: {ratio}")
    print(f"\npurger throughput, a backlog of {args.entries} entries × {TAGS_PER_ENTRY} tags:")
    print(
        f"{'nodes':<8}{'seconds':>10}{'tags/s':>12}{'entries/s':>12}{'batches':>9}{'requests':>10}"
    )
    for row in rates:
        print(
            f"{row['nodes']:<8}{row['seconds']:>10}{row['tags_per_second']:>12}"
            f"{row['entries_per_second']:>12}{row['batches']:>9}{row['requests']:>10}"
        )
    results = {
        "benchmark": "bus_purge",
        "smoke": args.smoke,
        "machine": machine(),
        "purge_window": windows,
        "bus_over_direct_p50": ratio,
        "throughput": rates,
        "two_over_one_nodes": round(rates[1]["tags_per_second"] / rates[0]["tags_per_second"], 2),
    }
    write_results(args.out, results)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
