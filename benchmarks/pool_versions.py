"""What a hit's version check costs in a Memcached pool: µs per ``get_with``, peers side by side.

    .venv/bin/python benchmarks/pool_versions.py [--rounds 2000] [--out result.json]

Not a test (no assertion on time): a measurement. It starts four private memcached
servers on free loopback ports and times the read a hit makes (the versions of its tags
and the artifact, ``VersionStore.get_with(tags, [key])``), all versions present, for
pages of 1, 10 and 40 tags, on:

- ``single``: Strata's plain store on one server (what a one-node site pays);
- ``stock pool``: the plain store on a pool of three through Django's ``PyMemcacheCache``
  (``HashClient``), which is unsafe when a node drops out and comes back (ABA);
- ``pool store``: ``strata.tags.pool.PoolVersionStore`` on the same three servers (two
  copies of each version read, one ``get_many`` per node touched);
- ``pool store, 2 nodes``: the same store on a pool of two.

It also times three ``get_many`` calls, one per node, made one after the other (what
the pool store does) and from three threads at once, to see whether concurrent per-node
calls would pay on this network.

The peers run interleaved in the same process, so the machine's drift hits them alike.
Writes ``benchmarks/results/pool_versions.json`` with the machine's description.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, require_program, rounds_arguments, use_repository, write_results

use_repository()

TAG_COUNTS = (1, 10, 40)


def main() -> int:
    args = rounds_arguments(__doc__.splitlines()[0], 2000, "pool_versions")

    from strata.stack.memcached import Memcached
    from strata.stack.ports import free_port

    binary = require_program("memcached")
    run_dir = Path(tempfile.mkdtemp(prefix="strata-bench-pool-", dir="/tmp"))
    taken: set[int] = set()
    ports = [free_port(taken) for _ in range(4)]
    servers = [
        Memcached(f"mc{i}", run_dir, "127.0.0.1", p, binary, 64) for i, p in enumerate(ports)
    ]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready(10)
        results = measure([s.address for s in servers], args.rounds)
        results["per_node_calls"] = per_node_calls(servers[:3], args.rounds)
    finally:
        for server in servers:
            server.stop()
    results["machine"] = machine(packages=["pymemcache"])
    results["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results["command"] = "python benchmarks/pool_versions.py " + " ".join(sys.argv[1:])
    report(results)
    write_results(args.out, results)
    print(f"\nwrote {args.out}")
    return 0


def configure(addresses: list[str]) -> None:
    from django.conf import settings

    options = {"timeout": 0.5, "connect_timeout": 0.5}

    def memcached(locations):
        return {
            "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
            "LOCATION": locations,
            "OPTIONS": options,
        }

    settings.configure(
        INSTALLED_APPS=[],
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "single": memcached(addresses[3:4]),
            "pool": memcached(addresses[:3]),
            "two": memcached(addresses[:2]),
        },
    )
    import django

    django.setup()


def measure(addresses: list[str], rounds: int) -> dict:
    configure(addresses)
    from strata.tags.pool import PoolVersionStore
    from strata.tags.versions import VersionStore

    peers = {
        "single": VersionStore("single"),
        "stock pool": VersionStore("pool"),
        "pool store": PoolVersionStore("pool"),
        "pool store, 2 nodes": PoolVersionStore("two"),
    }
    sizes = {}
    for count in TAG_COUNTS:
        tags = [f"bench:tag{n}" for n in range(count)]
        key = f"bench:artifact{count}"
        for store in peers.values():
            snapshot = store.snapshot(tags)
            store.store(key, ("payload" * 100, snapshot), 600, snapshot, immediate=True)
            versions, extras = store.get_with(tags, [key])
            assert versions == snapshot and key in extras, "the hit path must hit"
        timings = {name: [] for name in peers}
        for _ in range(rounds // 10):
            for name, store in peers.items():  # interleaved: drift hits every peer alike
                start = time.perf_counter()
                for _ in range(10):
                    store.get_with(tags, [key])
                timings[name].append((time.perf_counter() - start) / 10 * 1e6)
        medians = {name: statistics.median(values) for name, values in timings.items()}
        sizes[str(count)] = {
            name: {
                "us_median": round(medians[name], 1),
                "us_p90": round(statistics.quantiles(timings[name], n=10)[-1], 1),
                "vs_single": round(medians[name] / medians["single"], 2),
                "vs_stock_pool": round(medians[name] / medians["stock pool"], 2),
            }
            for name in peers
        }
    return {"rounds": rounds, "tags": sizes}


def per_node_calls(servers, rounds: int) -> dict:
    """µs for one get_many on each of three nodes: one after the other, or in threads."""
    from concurrent.futures import ThreadPoolExecutor

    from pymemcache.client.base import Client

    clients = [Client((s.host, s.port), default_noreply=False) for s in servers]
    spare = [Client((s.host, s.port), default_noreply=False) for s in servers]
    keys = [f"bench:k{n}" for n in range(10)]
    clients[0].set_many(dict.fromkeys(keys, b"v" * 16))
    threads = ThreadPoolExecutor(max_workers=len(servers))

    def sequential():
        return [client.get_many(keys) for client in clients]

    def concurrent():
        futures = [threads.submit(client.get_many, keys) for client in spare]
        return [future.result() for future in futures]

    timings = {"sequential": [], "threads": []}
    for _ in range(rounds // 10):
        for name, calls in (("sequential", sequential), ("threads", concurrent)):
            start = time.perf_counter()
            for _ in range(10):
                calls()
            timings[name].append((time.perf_counter() - start) / 10 * 1e6)
    threads.shutdown()
    for client in clients + spare:
        client.close()
    return {name: round(statistics.median(values), 1) for name, values in timings.items()}


def report(results: dict) -> None:
    print(f"get_with(tags, [artifact]) on a hit, µs per call, {results['rounds']} calls each")
    print(f"{'tags':>5}  {'peer':<22}{'median':>9}{'p90':>9}{'x single':>10}{'x stock pool':>14}")
    for count, peers in results["tags"].items():
        for name, row in peers.items():
            print(
                f"{count:>5}  {name:<22}{row['us_median']:>9.1f}{row['us_p90']:>9.1f}"
                f"{row['vs_single']:>10.2f}{row['vs_stock_pool']:>14.2f}"
            )
    calls = results.get("per_node_calls")
    if calls:
        print(
            f"\nthree get_many, one per node: {calls['sequential']:.1f} µs one after the "
            f"other, {calls['threads']:.1f} µs from three threads"
        )


if __name__ == "__main__":
    sys.exit(main())
