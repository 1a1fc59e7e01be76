"""The near cache against a real Redis: what a lookup costs, and whether any read is stale.

    .venv/bin/python benchmarks/near_cache.py [--seconds 3] [--readers 2] [--smoke]

1. Cost: ``get_with`` of a page's versions (50 tags) and the page itself, from the near
   cache and from Redis (near cache off), in one process, side by side; and a checked page
   (one derived lookup, what a page-cache hit does).
2. Freshness across processes: a writer changes one version every few milliseconds;
   reader processes read it as fast as they can through their near caches, noting when
   each read began. A read is stale if it began after the writer's bump had returned and
   still saw an older version. Reports stale reads and how far the push arrived after
   the bump returned (p50/p99/max), from each reader's push connection.

Writes ``benchmarks/results/near_cache.json`` (or ``--out``); exits non-zero on a stale read.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import machine, write_results  # noqa: E402  isort: skip


def _configure(url: str, near: bool = True) -> None:
    import django
    from django.conf import settings

    settings.configure(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "bench",
            }
        },
        INSTALLED_APPS=["django.contrib.contenttypes", "strata"],
        DATABASES={},
        STRATA={"NEAR_CACHE": {"ENABLED": near}, "TIMING": {"ENABLED": False}},
    )
    django.setup()


def _ready(store) -> None:
    store.get_with(["warm-up"])
    deadline = time.monotonic() + 5
    while not store.near.drain():
        if time.monotonic() > deadline:
            raise SystemExit("the push connection did not open")
        time.sleep(0.01)


def _timed(call, seconds: float) -> float:
    """Microseconds per call, over about ``seconds``."""
    count, started = 0, time.perf_counter()
    while True:
        for _ in range(200):
            call()
        count += 200
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return round(1e6 * elapsed / count, 2)


def cost(url: str, seconds: float) -> dict:
    """``get_with`` of 50 tags and a page, near cache on and off, in this process."""
    _configure(url)
    from strata.tags.redis_store import RedisVersionStore
    from strata.tags.stores import version_store

    near_store = version_store("default")
    _ready(near_store)
    far_store = RedisVersionStore("default")
    far_store.close()
    far_store.near = None
    tags = [f"tag.{i}" for i in range(50)]
    near_store.bump(tags)
    near_store.cache.set("strata:p2:page", b"x" * 30_000)
    token = near_store.check_token()
    versions, extras = near_store.get_with(tags, ["strata:p2:page"])
    near_store.keep_checked(
        "page", extras["strata:p2:page"], tags, ["strata:p2:page"], token, 30_000
    )
    assert near_store.checked("page") is not None, "the checked page was not kept"
    before = near_store.near.figures()
    results = {
        "redis_us": _timed(lambda: far_store.get_with(tags, ["strata:p2:page"]), seconds),
        "near_us": _timed(lambda: near_store.get_with(tags, ["strata:p2:page"]), seconds),
        "checked_page_us": _timed(lambda: near_store.checked("page"), seconds),
    }
    figures = near_store.near.figures()
    # Proof: every timed near-cache lookup was answered from the copies.
    assert figures["misses"] == before["misses"] and figures["hits"] > before["hits"], figures
    results["near_vs_redis"] = round(results["redis_us"] / results["near_us"], 1)
    return results


def _reader(url: str, seconds: float, queue) -> None:
    _configure(url)
    from strata.tags.stores import version_store

    store = version_store("default")
    _ready(store)
    key = store._version_key("hot")
    arrivals: list[float] = []
    invalidate = store.near.invalidate

    def noting(keys):
        if keys is not None and key in keys:
            arrivals.append(time.time())
        invalidate(keys)

    store.near.invalidate = noting
    reads: list[tuple[float, str | None]] = []
    queue.put("ready")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        began = time.time()
        reads.append((began, store.get_with(["hot"])[0]["hot"]))
    queue.put((reads, arrivals, store.near.figures()))


def freshness(url: str, seconds: float, readers: int, interval: float) -> dict:
    """Readers in processes of their own against a writer in this one."""
    from strata.tags.stores import version_store

    store = version_store("default")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [
        context.Process(target=_reader, args=(url, seconds + 1.0, queue)) for _ in range(readers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        assert queue.get(timeout=60) == "ready"
    key = store._version_key("hot")
    dumps = store._serializer.dumps
    client = store._client
    bumps: list[tuple[float, str]] = []  # (bump returned, version)
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        version = f"v{count}"
        client.set(key, dumps(version))  # what a bump does to one version
        bumps.append((time.time(), version))
        count += 1
        time.sleep(interval)
    outputs = [queue.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=10)
    order = {version: index for index, (_, version) in enumerate(bumps)}
    stale, reads_total, late_ms = 0, 0, []
    for reads, arrivals, _ in outputs:
        reads_total += len(reads)
        index = -1
        for began, seen in reads:
            while index + 1 < len(bumps) and bumps[index + 1][0] <= began:
                index += 1
            if index >= 0 and order.get(seen, -1) < index:
                stale += 1
        # The i-th push heard is the i-th bump (one key, in order): lateness after its reply.
        late_ms += [
            1000 * (arrived - bumps[i][0]) for i, arrived in enumerate(arrivals[: len(bumps)])
        ]
    late_ms.sort()
    return {
        "readers": readers,
        "bumps": len(bumps),
        "reads": reads_total,
        "stale_reads": stale,
        "push_after_reply_ms": {
            "p50": round(statistics.median(late_ms), 3),
            "p99": round(late_ms[int(0.99 * (len(late_ms) - 1))], 3),
            "max": round(late_ms[-1], 3),
        },
        "reader_figures": [figures for _, _, figures in outputs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.002)
    parser.add_argument("--smoke", action="store_true", help="about a second per part")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "near_cache.json")
    args = parser.parse_args()
    if args.smoke:
        args.seconds = 0.5
    from tests.bus.helpers import running_redis

    with running_redis() as redis:
        result = {"machine": machine(), "smoke": args.smoke, "cost": cost(redis.url, args.seconds)}
        result["freshness"] = freshness(redis.url, args.seconds, args.readers, args.interval)
    cost_ = result["cost"]
    fresh = result["freshness"]
    late = fresh["push_after_reply_ms"]
    print(
        f"get_with 50 tags + page: Redis {cost_['redis_us']} us, near cache {cost_['near_us']} us "
        f"({cost_['near_vs_redis']}x); a checked page {cost_['checked_page_us']} us"
    )
    print(
        f"{fresh['readers']} readers, {fresh['bumps']} bumps, {fresh['reads']} reads: "
        f"{fresh['stale_reads']} stale; push heard after the bump returned: p50 {late['p50']} ms, "
        f"p99 {late['p99']} ms, max {late['max']} ms"
    )
    write_results(args.out, result)
    if fresh["stale_reads"]:
        raise SystemExit("stale reads: the near cache is not exact")


if __name__ == "__main__":
    main()
