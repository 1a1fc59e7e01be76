"""What the metrics cost on a page-cache hit, in µs per hit: on, off and counted directly.

    .venv/bin/python benchmarks/metrics_cost.py [--blocks 40] [--per-block 500] [--smoke]
        [--cache-url locmem://] [--out benchmarks/results/metrics_cost.json]

Not a test (no assertion on time): a measurement. It seeds a small newsroom in a
temporary SQLite database, then runs one process per case that calls the demo's WSGI
application (``PageCacheApplication`` around Django, as an app server's worker does) for
one article page, answered from the page cache below Django: the hot path. The cache is
``locmem://`` by default — in the process, as the near cache makes a hit on Redis
(10–14 µs in all, ``docs/performance.md``); ``--cache-url redis://...`` for the real one.

Within one process, blocks of hits alternate between three variants (on, off, direct,
direct, off, on, ...), so slow drifts of the machine hit each alike:

``on``      what ships: the hit is added to this process's tally (one lock, a bucket
            index), moved into ``prometheus_client``'s values once a second
``off``     ``STRATA['METRICS']['ENABLED']`` off: nothing is counted
``direct``  the straightforward way, for comparison: ``Counter.inc()`` and
            ``Histogram.observe()`` on pre-bound children at every hit

Cases: the values in memory (one process) and in files (``PROMETHEUS_MULTIPROC_DIR``
set, as under Gunicorn or uWSGI with several workers).

Proof that each variant measured what it claims (``--smoke`` runs a short version and a
test reads it): every timed request was a page hit; after each block the tally is
flushed and ``strata_requests_total{outcome="page-hit"}`` read: it grew by the block's
hits in ``on`` and ``direct`` blocks and not at all in ``off`` blocks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, ROOT, machine, use_repository, write_results, wsgi_environ

CASES = ("in memory", "multiprocess files")
VARIANTS = ("on", "off", "direct")


class _Direct:
    """Counts each hit straight into the metric values (the way not taken)."""

    def __init__(self) -> None:
        self.children: dict = {}

    def page_hit(self, view: str | None, seconds: float) -> None:
        from strata.metrics.registry import PAGE_CACHE_VIEW, REQUEST_SECONDS, REQUESTS

        pair = self.children.get(view)
        if pair is None:
            name = view or PAGE_CACHE_VIEW
            pair = self.children[view] = (
                REQUESTS.labels(name, "page-hit", ""),
                REQUEST_SECONDS.labels(name, "page-hit"),
            )
        pair[0].inc()
        pair[1].observe(seconds)


def _call(application, environ: dict) -> str:
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["headers"] = headers

    result = application(dict(environ), start_response)
    for _ in result:
        pass
    return dict(seen["headers"]).get("X-Strata", "")


def measure(args) -> dict:
    """Alternate blocks of the three variants in this process; µs per hit of each."""
    use_repository()
    os.environ["DJANGO_SETTINGS_MODULE"] = "newsroom_site.settings"
    import newsroom_site.settings as site

    site.LOGGING = {"version": 1, "disable_existing_loggers": False}
    import django

    django.setup()
    from newsroom.models import Article
    from newsroom_site.wsgi import application
    from strata.metrics.registry import PAGE_CACHE_VIEW, REQUESTS, tally
    from strata.timing.aggregates import known_view

    path = Article.objects.order_by("pk").first().get_absolute_url()
    environ = wsgi_environ(path)
    for _ in range(50):
        _call(application, environ)  # a miss, then hits; the view name is known
    view = known_view(path) or PAGE_CACHE_VIEW  # None: a hit of a page rendered elsewhere
    counted = REQUESTS.labels(view, "page-hit", "")
    direct = _Direct()
    variants = {"on": tally, "off": None, "direct": direct}
    blocks: dict[str, list[float]] = {name: [] for name in VARIANTS}
    grew: dict[str, list[float]] = {name: [] for name in VARIANTS}
    words: set[str] = set()
    order = VARIANTS + VARIANTS[::-1]
    for index in range(3 * args.blocks):
        name = order[index % len(order)]
        application._metrics = variants[name]  # set per process: kept until a fork
        tally.flush()
        before = counted._value.get()
        hits = []
        started = time.perf_counter()
        for _ in range(args.per_block):
            hits.append(_call(application, environ))
        elapsed = time.perf_counter() - started
        tally.flush()
        blocks[name].append(1e6 * elapsed / args.per_block)
        grew[name].append(counted._value.get() - before)
        words.update(hits)
    medians = {name: statistics.median(blocks[name]) for name in VARIANTS}
    return {
        "path": path,
        "view": view,
        "per_block": args.per_block,
        "x_strata": sorted(words),
        "median_us": {name: round(medians[name], 3) for name in VARIANTS},
        "fastest_us": {name: round(min(blocks[name]), 3) for name in VARIANTS},
        "cost_us": round(medians["on"] - medians["off"], 3),
        "direct_cost_us": round(medians["direct"] - medians["off"], 3),
        "counted_per_block": {name: sorted(set(grew[name])) for name in VARIANTS},
        "multiprocess": bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")),
    }


def proof(case: dict) -> list[dict]:
    """What the run must show for its figures to mean anything."""
    per_block = case["per_block"]
    counted = case["counted_per_block"]
    return [
        {"check": "every timed request was a page hit", "ok": case["x_strata"] == ["page-hit"]},
        {"check": "on counted each hit", "ok": counted["on"] == [per_block]},
        {"check": "direct counted each hit", "ok": counted["direct"] == [per_block]},
        {"check": "off counted nothing", "ok": counted["off"] == [0]},
    ]


def run_child(env: dict, args, case: str, scratch: Path) -> dict:
    case_env = dict(env)
    if case_env["CACHE_URL"].startswith("redis"):
        # Each case renders its page once in its own process: keys of its own.
        separator = "&" if "?" in case_env["CACHE_URL"] else "?"
        case_env["CACHE_URL"] += f"{separator}key_prefix=metrics-cost-{CASES.index(case)}"
    if case == "multiprocess files":
        directory = scratch / "prometheus"
        directory.mkdir(exist_ok=True)
        case_env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    command = [sys.executable, __file__, "--child", "--blocks", str(args.blocks)]
    command += ["--per-block", str(args.per_block)]
    out = subprocess.run(command, env=case_env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"metrics_cost ({case}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--blocks", type=int, default=40, help="blocks of each variant")
    parser.add_argument("--per-block", type=int, default=500, help="hits per block")
    parser.add_argument("--smoke", action="store_true", help="a short run that proves itself")
    parser.add_argument("--cache-url", default="locmem://", help="Strata's cache")
    parser.add_argument("--out", type=Path, default=RESULTS / "metrics_cost.json")
    args = parser.parse_args()
    if args.smoke:
        args.blocks, args.per_block = 2, 50
    if args.child:
        print(json.dumps(measure(args)))
        return

    scratch = Path(tempfile.mkdtemp(prefix="strata-metrics-cost-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{scratch / 'db.sqlite3'}",
        "CACHE_URL": args.cache_url,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "demo")]),
        "STRATA_PAGE_CACHE": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    manage = [sys.executable, str(ROOT / "demo" / "manage.py")]
    # Management commands run the system checks, which refuse a per-process cache.
    setup_env = {**env, "CACHE_URL": f"file://{scratch / 'setup-cache'}"}
    subprocess.run([*manage, "migrate", "-v0"], env=setup_env, check=True)
    seed = ["--articles", "20", "--comments", "100", "--authors", "5", "--readers", "5"]
    subprocess.run(
        [*manage, "seed_newsroom", *seed], env=setup_env, check=True, capture_output=True
    )

    results: dict = {"smoke": args.smoke, "cache": args.cache_url, "cases": {}, "checks": []}
    print(
        f"{'case':20} {'off µs':>8} {'on µs':>8} {'direct µs':>10} {'on-off':>8} {'direct-off':>11}"
    )
    for case in CASES:
        figures = run_child(env, args, case, scratch)
        results["cases"][case] = figures
        results["checks"] += [{"case": case, **check} for check in proof(figures)]
        median = figures["median_us"]
        print(
            f"{case:20} {median['off']:8.2f} {median['on']:8.2f} {median['direct']:10.2f} "
            f"{figures['cost_us']:+8.2f} {figures['direct_cost_us']:+11.2f}"
        )
    results["ok"] = all(check["ok"] for check in results["checks"])
    for check in results["checks"]:
        if not check["ok"]:
            print(f"FAILED: {check['case']}: {check['check']}")
    write_results(args.out, {"machine": machine(), **results})
    print(f"written to {args.out}")
    if not results["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
