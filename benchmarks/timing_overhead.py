"""What request timing costs, in µs per request and per hooked call.

    .venv/bin/python benchmarks/timing_overhead.py [--cache-url redis://127.0.0.1:6379/0]
        [--blocks 40] [--out result.json]

Not a test (no assertion on time): a measurement.
It seeds a small newsroom in a temporary SQLite database (and a temporary file cache
unless ``--cache-url`` names another), then runs one process per case that calls the
demo's WSGI application directly — Django's handler and every middleware, no server, no
network between client and Django — the way an app server's worker does.

Per request: within one process, blocks of requests alternate between timing on and
off (``StrataMiddleware.timing_on`` switched; the hooks stay installed and find no
collector when off), so slow drifts of the machine hit both alike. The table gives the
median µs per request of each and the difference: the collector, the ``Server-Timing``
decision, the per-view figures and the hooks' bookkeeping while a request is timed.

Per call: what a hook adds to one cache call, one SQL statement and one template render,
idle (no request being timed) and active, against the unwrapped function.

Cases: a page-cache hit answered by ``StrataMiddleware`` (hits answered by
``PageCacheApplication`` are not timed and cost nothing more), an article page rendered
with the query and fragment caches warm (page cache off), and the same with every
Strata cache off.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine, use_repository, write_results, wsgi_environ

CASES = {
    # name: (page cache, query cache, fragment cache, requests per block)
    "page-cache hit (StrataMiddleware)": ("1", "1", "1", 200),
    "article rendered, query+fragment caches warm": ("0", "1", "1", 40),
    "article rendered, every Strata cache off": ("0", "0", "0", 40),
}


def call(application, path: str) -> dict:
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    result = application(wsgi_environ(path), start_response)
    try:
        for _ in result:
            pass
    finally:
        result.close()
    return seen


def _setup() -> None:
    use_repository()
    os.environ["DJANGO_SETTINGS_MODULE"] = "newsroom_site.settings"
    import newsroom_site.settings as site

    site.LOGGING = {"version": 1, "disable_existing_loggers": False}
    import django

    django.setup()


def per_request(args) -> dict:
    """Alternate blocks with timing on and off in this process; µs per request of each."""
    _setup()
    from django.core.wsgi import get_wsgi_application

    from newsroom.models import Article

    path = Article.objects.order_by("pk").first().get_absolute_url()
    application = get_wsgi_application()  # StrataMiddleware first; no PageCacheApplication
    for _ in range(100):
        seen = call(application, path)
    middleware = application._middleware_chain.__wrapped__
    blocks: dict[bool, list[float]] = {True: [], False: []}
    for index in range(2 * args.blocks):
        on = index % 4 in (0, 3)  # on, off, off, on, ...: drifts hit both alike
        middleware.timing_on = on
        started = time.perf_counter()
        for _ in range(args.per_block):
            call(application, path)
        blocks[on].append(1e6 * (time.perf_counter() - started) / args.per_block)
    on, off = statistics.median(blocks[True]), statistics.median(blocks[False])
    fastest_on, fastest_off = min(blocks[True]), min(blocks[False])
    return {
        "path": path,
        "x_strata": seen["headers"].get("X-Strata"),
        "median_on_us": round(on, 2),
        "median_off_us": round(off, 2),
        "cost_us": round(on - off, 2),
        "cost_percent": round(100 * (on - off) / off, 2),
        # The quietest block of each: least disturbed by the rest of the machine.
        "fastest_on_us": round(fastest_on, 2),
        "fastest_off_us": round(fastest_off, 2),
        "fastest_cost_us": round(fastest_on - fastest_off, 2),
        "blocks_on_us": [round(b, 1) for b in blocks[True]],
        "blocks_off_us": [round(b, 1) for b in blocks[False]],
    }


def _each(func, n: int = 20000) -> float:
    """µs per call of ``func`` (best of 5 runs of ``n``)."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            func()
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / n


def per_call(args) -> dict:
    """What a hook adds to one call, idle and active, against the unwrapped function."""
    _setup()
    from django.core.cache.backends.locmem import LocMemCache
    from django.db import connection
    from django.db.backends.utils import CursorWrapper
    from django.template import Context, Engine

    from strata.timing import monkey_patch, timed
    from strata.timing.collector import CACHE

    monkey_patch._wrap(LocMemCache, "get", CACHE)  # as for a backend named in CACHES
    cache = LocMemCache("timing-overhead", {})
    cache.set("k", 1)
    raw_get = LocMemCache.get.__wrapped__
    engine = Engine()
    template = engine.from_string("{{ a }}")
    context = Context({"a": 1})
    raw_render = type(template).render.__wrapped__
    cursor = connection.cursor()
    results = {}

    def hooked_sql():
        cursor.execute("SELECT 1")

    def measure(name, raw, hooked):
        plain = _each(raw)
        idle = _each(hooked)
        with timed():
            active = _each(hooked)
        results[name] = {
            "plain_us": round(plain, 3),
            "idle_extra_us": round(idle - plain, 3),
            "active_extra_us": round(active - plain, 3),
        }

    measure("cache get (LocMemCache)", lambda: raw_get(cache, "k"), lambda: cache.get("k"))
    measure(
        "template render (one variable)",
        lambda: raw_render(template, context),
        lambda: template.render(context),
    )
    # The statement hook wraps CursorWrapper._execute, below the execute wrappers.
    timed_execute = CursorWrapper._execute
    CursorWrapper._execute = timed_execute.__wrapped__
    plain_sql = _each(hooked_sql, 5000)
    CursorWrapper._execute = timed_execute
    idle_sql = _each(hooked_sql, 5000)
    with timed():
        active_sql = _each(hooked_sql, 5000)
    results["SQL statement (SQLite SELECT 1)"] = {
        "plain_us": round(plain_sql, 3),
        "idle_extra_us": round(idle_sql - plain_sql, 3),
        "active_extra_us": round(active_sql - plain_sql, 3),
    }
    return results


def run_child(env: dict, extra: list[str], case_env: dict | None = None) -> dict:
    """Run this script as a child (``--child ...``) and read the JSON line it prints last."""
    out = subprocess.run(
        [sys.executable, __file__, *extra],
        env={**env, **(case_env or {})},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"timing_overhead {' '.join(extra)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["request", "call"], default=None)
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--per-block", type=int, default=200)
    parser.add_argument("--cache-url", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.child == "request":
        print(json.dumps(per_request(args)))
        return
    if args.child == "call":
        print(json.dumps(per_call(args)))
        return

    scratch = Path(tempfile.mkdtemp(prefix="strata-timing-overhead-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{scratch / 'db.sqlite3'}",
        "CACHE_URL": args.cache_url or f"file://{scratch / 'cache'}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "demo")]),
    }
    manage = [sys.executable, str(ROOT / "demo" / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    seed = ["--articles", "500", "--comments", "5000", "--readers", "20"]
    subprocess.run([*manage, "seed_newsroom", *seed], env=env, check=True, capture_output=True)
    subprocess.run(
        [*manage, "shell", "-c", "from django.core.cache import cache; cache.clear()"],
        env=env,
        check=True,
    )

    print(
        f"cache: {env['CACHE_URL']}, database: SQLite; {platform.processor() or platform.machine()}"
    )
    results: dict = {"per_request": {}, "per_call": {}}
    for name, (page, query, fragment, per_block) in CASES.items():
        case_env = {
            "STRATA_PAGE_CACHE": page,
            "STRATA_QUERY_CACHE": query,
            "STRATA_FRAGMENT_CACHE": fragment,
        }
        extra = ["--child", "request", "--blocks", str(args.blocks)]
        extra += ["--per-block", str(per_block)]
        measured = run_child(env, extra, case_env)
        results["per_request"][name] = measured
        print(
            f"{name:46} median off {measured['median_off_us']:8.1f} on "
            f"{measured['median_on_us']:8.1f} cost {measured['cost_us']:+6.1f} µs "
            f"({measured['cost_percent']:+.2f}%); fastest blocks off "
            f"{measured['fastest_off_us']:8.1f} on {measured['fastest_on_us']:8.1f} "
            f"cost {measured['fastest_cost_us']:+6.1f} µs  [{measured['x_strata']}]"
        )
    results["per_call"] = run_child(env, ["--child", "call"])
    for name, figures in results["per_call"].items():
        print(
            f"{name:46} {figures['plain_us']:7.3f} µs; hook adds "
            f"{figures['idle_extra_us']:+.3f} µs idle, {figures['active_extra_us']:+.3f} µs timed"
        )
    if args.out:
        write_results(args.out, {"machine": machine(), **results})


if __name__ == "__main__":
    main()
