"""What the replica rule costs: µs per cacheable query-cache miss on a PostgreSQL replica.

    .venv/bin/python benchmarks/replica_check.py [--reads 400] [--out result.json]

Not a test (no assertion on time): a measurement. It starts a private PostgreSQL primary
and a streaming replica on free loopback ports, points ``tests.replica_settings`` at
them (a local in-process cache, so that only the database round trips differ), and times
a primary-key read through the cached ORM, routed to the replica, with the cache
emptied before each read so that every read is a miss that stores:

- ``REPLICAS`` empty, reads sent to the replica by ``.using()``: no WAL check (what an
  unsafe setup would cost);
- ``REPLICAS = ["replica1"]``, primary idle: one round trip to the primary
  (``pg_current_wal_insert_lsn()``), the replica's position remembered;
- the same when the primary has moved on since the replica connection last reported its
  position (simulated by forgetting that position, the replica being caught up): one
  more round trip, to the replica (``pg_last_wal_replay_lsn()``).

Hits cost nothing more, and neither do reads on the primary or a site without replicas.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

from _common import RESULTS, machine, use_repository, write_results

use_repository()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--out", type=Path, default=RESULTS / "replica_check.json")
    args = parser.parse_args()

    from strata.stack.ports import free_port
    from strata.stack.postgres import PostgreSQL, find_postgres_bindir
    from tests.helpers import make_run_dir, remove_run_dir
    from tests.replicas.helpers import Replica, wait_caught_up

    bindir = find_postgres_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (scripts/bootstrap.sh installs it)")
    run_dir = make_run_dir()
    taken: set[int] = set()
    ports = [free_port(taken), free_port(taken)]
    primary = PostgreSQL("primary", run_dir, "127.0.0.1", ports[0], bindir)
    replica = Replica("replica", run_dir, "127.0.0.1", ports[1], primary)
    try:
        primary.start()
        primary.wait_ready()
        replica.start()
        replica.wait_ready()
        os.environ.update(
            STRATA_TEST_PRIMARY_URL=primary.url,
            STRATA_TEST_REPLICA_URL=replica.url,
            CACHE_URL="locmem://replica-bench",
            DJANGO_SETTINGS_MODULE="tests.replica_settings",
        )
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        wait_caught_up(primary, replica)
        rows = measure(args.reads, primary, replica)
    finally:
        replica.stop()
        primary.stop()
        remove_run_dir(run_dir)
    base = rows[0]["median_us"]
    print(f"{'case':<54} {'median µs':>10} {'p90 µs':>8} {'extra µs':>9} {'not stored':>10}")
    for row in rows:
        row["extra_us"] = round(row["median_us"] - base, 1)
        print(
            f"{row['case']:<54} {row['median_us']:>10} {row['p90_us']:>8} "
            f"{row['extra_us']:>9} {row['not_stored']:>10}"
        )
    result = {
        "benchmark": "replica_check",
        "machine": machine(),
        "reads_per_case": args.reads,
        "rows": rows,
    }
    write_results(args.out, result)
    print(f"wrote {args.out}")
    return 0


def measure(reads: int, primary, replica) -> list[dict]:
    from django.core.cache import caches
    from django.db import connections
    from django.test.utils import override_settings

    from newsroom.models import Author
    from strata.conf import strata_settings
    from tests.replicas.helpers import wait_caught_up

    author = Author.objects.using("default").create(name="One", slug="one", bio="")
    wait_caught_up(primary, replica)
    cache = caches[strata_settings().cache_alias]

    def case(name: str, write_between: bool, replicas: list[str]) -> dict:
        from django.conf import settings

        from strata.querycache.stats import stats

        behind = stats["replica-behind"]
        with override_settings(STRATA={**settings.STRATA, "REPLICAS": replicas}):
            samples = []
            for i in range(reads):
                if write_between:
                    forget_replica_position(i)
                cache.clear()
                start = time.perf_counter()
                Author.objects.using("replica1").get(pk=author.pk)
                samples.append((time.perf_counter() - start) * 1e6)
        samples.sort()
        return {
            "case": name,
            "not_stored": stats["replica-behind"] - behind,
            "median_us": round(statistics.median(samples), 1),
            "p90_us": round(samples[int(len(samples) * 0.9)], 1),
        }

    def forget_replica_position(i: int) -> None:
        # As if the primary had moved on since this connection last asked the replica
        # (without a write and a wait, which would leave the process cold before the read).
        with contextlib.suppress(AttributeError):
            delattr(connections["replica1"], "_strata_replayed")

    case("warm-up", False, [])
    return [
        case("miss on the replica, no WAL check (REPLICAS empty)", False, []),
        case("miss on the replica, primary idle (+1 round trip)", False, ["replica1"]),
        case("miss on the replica, primary moved (+2 round trips)", True, ["replica1"]),
    ]


if __name__ == "__main__":
    sys.exit(main())
