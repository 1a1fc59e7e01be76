"""What the failover epoch costs: µs per version read on Redis, with and without Sentinel.

    .venv/bin/python benchmarks/sentinel_epoch.py [--rounds 3000] [--out result.json]

Not a test (no assertion on time): a measurement. It starts a private Redis primary, a
replica and a Sentinel on free loopback ports (``tests/cache/sentinel/helpers.py``) and times,
for 1, 10 and 40 tags, on the same primary:

- ``redis``: ``RedisVersionStore`` through Django's ``RedisCache`` pointed at the primary
  (what a site without Sentinel runs, and with it before this backend);
- ``sentinel``: ``SentinelVersionStore`` through ``strata.cache.SentinelRedisCache``
  (the epoch read in the same MGET, every version stamped with it).

Two reads: ``hit`` is what every cache hit does (``get_with(tags, [key])``, all versions
present); ``cold`` is a miss whose versions are all missing (deleted before each read),
read and then stored: the plain store proposes tokens and creates them in the round trip
that stores the artifact, the Sentinel store creates them while reading (one command, one
more round trip). Peers run interleaved in one process.
Writes ``benchmarks/results/sentinel_epoch.json`` with the machine's description.
"""

from __future__ import annotations

import statistics
import sys
import time

from _common import machine, require_program, rounds_arguments, use_repository, write_results

use_repository()

TAG_COUNTS = (1, 10, 40)
PEERS = ("redis", "sentinel")


def main() -> int:
    args = rounds_arguments(__doc__.splitlines()[0], 3000, "sentinel_epoch")

    from tests.cache.sentinel.helpers import SERVICE, Topology

    binary = require_program("redis-server")
    topology = Topology(binary)
    try:
        configure(topology.primary().port, topology.location, SERVICE)
        results = {"reads": measure(args.rounds)}
    finally:
        from strata.cache.sentinel import stop_watching

        stop_watching()
        topology.stop()
    results["machine"] = machine(packages=["redis"])
    results["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results["command"] = "python benchmarks/sentinel_epoch.py " + " ".join(sys.argv[1:])
    report(results)
    write_results(args.out, results)
    print(f"\nwrote {args.out}")
    return 0


def configure(primary_port: int, location: str, service: str) -> None:
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=[],
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "redis": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{primary_port}/0",
                "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
            },
            "sentinel": {
                "BACKEND": "strata.cache.sentinel.SentinelRedisCache",
                "LOCATION": location,
                "OPTIONS": {"service_name": service},
            },
        },
    )
    import django

    django.setup()


def measure(rounds: int) -> list[dict]:
    from django.core.cache import caches

    from strata.tags.stores import version_store

    stores = {peer: version_store(peer) for peer in PEERS}
    value = "x" * 2000
    rows = []
    for count in TAG_COUNTS:
        tags = [f"bench_table.id={i}" for i in range(count)]
        for peer, store in stores.items():
            caches[peer].set("artifact", value, 600)
            store.snapshot(tags)  # every version present
        for read in ("hit", "cold"):
            samples: dict[str, list[float]] = {peer: [] for peer in PEERS}
            for _ in range(rounds):
                for peer, store in stores.items():
                    if read == "cold":
                        caches[peer].delete_many([f"strata:v:{t}" for t in tags])
                    started = time.perf_counter()
                    versions, _ = store.get_with(tags, ["artifact"])
                    if read == "cold":  # a miss: the artifact is stored with its snapshot
                        snapshot, missing = store.provisional(versions)
                        store.store("artifact", value, 600, snapshot, missing, immediate=True)
                    samples[peer].append(time.perf_counter() - started)
            for peer in PEERS:
                rows.append(
                    {
                        "tags": count,
                        "read": read,
                        "peer": peer,
                        "median_us": round(statistics.median(samples[peer]) * 1e6, 1),
                        "p90_us": round(statistics.quantiles(samples[peer], n=10)[-1] * 1e6, 1),
                    }
                )
    return rows


def report(results: dict) -> None:
    print(f"{'tags':>4} {'read':<5} {'redis µs':>9} {'sentinel µs':>12} {'ratio':>6}")
    rows = results["reads"]
    for plain, epoch in zip(rows[::2], rows[1::2], strict=True):
        ratio = epoch["median_us"] / plain["median_us"]
        print(
            f"{plain['tags']:>4} {plain['read']:<5} {plain['median_us']:>9} "
            f"{epoch['median_us']:>12} {ratio:>6.2f}"
        )
    described = results["machine"]
    print(
        f"\n{described['cpus']} CPUs, {described['platform']}, redis-py {described['packages']['redis']}"
    )


if __name__ == "__main__":
    sys.exit(main())
