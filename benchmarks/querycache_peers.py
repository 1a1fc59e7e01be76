"""Strata's query cache beside django-cachalot and django-cacheops, on the demo's pages.

Each variant runs in a process of its own with its own settings (``benchmarks/peer_settings``)
against the same PostgreSQL and the same Redis, flushed between variants:

1. warm: requests/s over a fixed list of pages (home, 20 articles, 10 tags, 10 authors)
   once every query result is cached;
2. cold miss: requests/s when the cache is emptied before each request, against plain
   Django (no query cache) on the same pages;
   and a miss after invalidation: results thrown away, bookkeeping kept (Strata's tag
   versions, cachalot's table versions; cacheops keeps none, so its two misses are alike);
3. write: microseconds for one ``Comment.objects.create``, one ``save()`` of it (an
   UPDATE) and one ``delete``, cache warm, in autocommit;
4. invalidation: how many queries reach the database, in the round of pages after one
   comment is inserted, that did not before: the cached results that write threw away.

    .venv/bin/python benchmarks/querycache_peers.py [--seconds 6] [--json benchmarks/results/querycache_peers.json]

The peers are installed beside Strata, not declared by it:
``.venv/bin/pip install -e .[bench]``. A peer that is missing or fails
on this Django is reported as such and the others still run. Pages are driven in-process
with ``django.test.Client``: the figures are Django's own cost, with no network or server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from strata.bench.report import package_version
from strata.stack.ports import free_port
from strata.stack.postgres import PostgreSQL, find_postgres_bindir
from strata.stack.program import find_program
from strata.stack.redis import Redis

from _common import machine, write_results  # isort: skip

console = Console(highlight=False, width=160)
HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "demo"
HOST = "127.0.0.1"
VARIANTS = [
    ("plain Django", "plain", None),
    ("Strata query cache", "strata_qc", None),
    ("django-cachalot", "cachalot", "django-cachalot"),
    ("django-cacheops", "cacheops", "django-cacheops"),
]


def django_env(database_url: str, cache_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        CACHE_URL=cache_url,
        PYTHONPATH=os.pathsep.join([str(DEMO), str(HERE)]),
        PYTHONUNBUFFERED="1",
        # The query caches alone: the demo's page and fragment caches would answer first.
        STRATA_PAGE_CACHE="0",
        STRATA_FRAGMENT_CACHE="0",
    )
    return env


def seed(env: dict[str, str]) -> None:
    env = {**env, "DJANGO_SETTINGS_MODULE": "newsroom_site.settings", "STRATA_QUERY_CACHE": "0"}
    for command in (["migrate", "--noinput"], ["seed_newsroom", "--if-empty"]):
        result = subprocess.run(
            [sys.executable, "-m", "django", *command],
            cwd=DEMO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")


def reset_between_variants(database_url: str, redis_url: str) -> None:
    """Empty Redis (every database) and vacuum the comments the previous writes left dead."""
    import psycopg
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.flushall()
    finally:
        client.close()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) newsroom_comment")


def run_variant(module: str, env: dict[str, str], seconds: float, run_dir: Path) -> dict:
    out = run_dir / f"{module}.json"
    started = time.perf_counter()
    try:
        result = subprocess.run(
            [
                sys.executable,
                str(HERE / "_querycache_worker.py"),
                module,
                "--seconds",
                str(seconds),
                "--out",
                str(out),
            ],
            cwd=DEMO,
            env=env,
            capture_output=True,
            text=True,
            timeout=5 * seconds + 90,
        )
    except subprocess.TimeoutExpired as exc:
        return {"error": f"timed out after {exc.timeout:.0f} s"}
    if result.returncode != 0 or not out.exists():
        return {"error": f"exit status {result.returncode}", "stderr": result.stderr[-6000:]}
    data = json.loads(out.read_text())
    data["worker_seconds"] = round(time.perf_counter() - started, 1)
    return data


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def show(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6, help="per measured phase (bound)")
    parser.add_argument(
        "--json", type=Path, default=Path("benchmarks/results/querycache_peers.json")
    )
    args = parser.parse_args()

    bindir = find_postgres_bindir()
    redis_server = find_program("redis-server")
    if bindir is None or redis_server is None:
        raise SystemExit("needs PostgreSQL (initdb, postgres) and redis-server installed")
    run_dir = Path(tempfile.mkdtemp(prefix="strata-bench-qc-", dir="/tmp"))
    run_dir.chmod(0o755)
    taken: set[int] = set()
    pg_port, redis_port = free_port(taken), free_port(taken)
    pg = PostgreSQL("postgres", run_dir, HOST, pg_port, bindir)
    cache = Redis("redis", run_dir, HOST, redis_port, redis_server)

    results: dict = {
        "machine": machine(packages=["django-strata", "django-cachalot", "django-cacheops"]),
        "seconds": args.seconds,
        "variants": {},
    }
    try:
        console.print(f"starting PostgreSQL on {HOST}:{pg_port} and Redis on {HOST}:{redis_port}")
        pg.start()
        pg.wait_ready()
        cache.start()
        cache.wait_ready()
        results["machine"]["postgresql"] = pg.version()
        results["machine"]["redis"] = cache.version()
        env = django_env(pg.url, cache.url)
        console.print("migrating and seeding the newsroom (5000 articles, 50000 comments)")
        seed(env)
        for label, module, distribution in VARIANTS:
            if distribution and package_version(distribution) is None:
                results["variants"][label] = {"error": f"{distribution} is not installed"}
                console.print(f"[bold]{label}[/]: [red]not installed[/], skipped")
                continue
            reset_between_variants(pg.url, cache.url)
            console.print(f"[bold]{label}[/]: measuring ({module})")
            load_before = os.getloadavg()
            results["variants"][label] = run_variant(module, env, args.seconds, run_dir)
            results["variants"][label]["load_before"] = [round(x, 2) for x in load_before]
            results["variants"][label]["load_after"] = [round(x, 2) for x in os.getloadavg()]
            if "error" in results["variants"][label]:
                failure = results["variants"][label]
                console.print(f"[red]{label} failed: {failure['error']}[/]")
                console.print(failure.get("stderr", ""), markup=False)
    finally:
        cache.stop()  # each stops only the process it started, if any
        pg.stop()
        shutil.rmtree(run_dir, ignore_errors=True)

    report(results)
    write_results(args.json, results)
    console.print(f"wrote {args.json}")


def percent_over(cost: float | None) -> str:
    return "—" if cost is None else f"{(cost - 1) * 100:+.1f}%"


def write_us(variant: dict) -> float:
    """Mean microseconds of one insert, one update and one delete together."""
    write = variant["write"]
    return write["insert_us_mean"] + write["update_us_mean"] + write["delete_us_mean"]


def report(results: dict) -> None:
    variants = results["variants"]
    ok = {label: v for label, v in variants.items() if "error" not in v}
    plain = ok.get("plain Django")
    plain_rps = None
    if plain:
        # With no cache its three read phases are the same work: pooled, they are the
        # reference every cached figure is compared with.
        phases = [plain[p] for p in ("warm", "cold", "miss")]
        plain_rps = sum(p["requests"] for p in phases) / sum(p["seconds"] for p in phases)
        results["plain_reference_rps"] = round(plain_rps, 1)
    plain_write = write_us(plain) if plain else None
    urls = next(iter(ok.values()))["urls"] if ok else []
    title = (
        f"{len(urls)} demo pages in-process (home, 20 articles, 10 tags, 10 authors), "
        f"{results['machine']['cpus']} cores, about {results['seconds']:g} s a phase"
    )

    reads = Table(title=f"Reads: {title}")
    for column in (
        "variant",
        "warm req/s",
        "warm vs plain",
        "cold miss req/s",
        "cold cost vs plain",
        "miss after invalidation req/s",
        "its cost vs plain",
    ):
        reads.add_column(column, justify="left" if column == "variant" else "right")
    writes = Table(title="Writes: one comment on one article, cache warm")
    for column in (
        "variant",
        "insert µs",
        "update µs",
        "delete µs",
        "write cost vs plain",
        "DB queries in a warm round",
        "queries re-run after 1 insert",
        "after 1 delete",
        "pages fresh after writes",
    ):
        writes.add_column(column, justify="left" if column == "variant" else "right")
    pages = Table(title="Mean ms per page: warm / cold miss / miss after invalidation")
    pages.add_column("variant")
    for page in ("home", "articles", "tags", "authors"):
        pages.add_column(page, justify="right")

    for label, v in variants.items():
        if "error" in v:
            reads.add_row(label, f"[red]{v['error']}[/]", *[""] * 5)
            writes.add_row(label, f"[red]{v['error']}[/]", *[""] * 7)
            continue
        cached = label != "plain Django"
        write = write_us(v)
        inv = v["invalidation"]
        reads.add_row(
            label,
            f"{v['warm']['rps']:.0f}",
            "reference" if not cached else show(ratio(v["warm"]["rps"], plain_rps), ".2f"),
            f"{v['cold']['rps']:.0f}",
            percent_over(ratio(plain_rps, v["cold"]["rps"])) if cached else "—",
            f"{v['miss']['rps']:.0f}",
            percent_over(ratio(plain_rps, v["miss"]["rps"])) if cached else "—",
        )
        writes.add_row(
            label,
            f"{v['write']['insert_us_mean']:.0f}",
            f"{v['write']['update_us_mean']:.0f}",
            f"{v['write']['delete_us_mean']:.0f}",
            percent_over(ratio(write, plain_write)) if cached else "—",
            str(inv["baseline_queries_per_round"]),
            str(inv["insert_rerun_queries"]) if cached else "—",
            str(inv["delete_rerun_queries"]) if cached else "—",
            "yes" if inv["fresh_after_insert"] and inv["fresh_after_delete"] else "[red]NO[/]",
        )
        pages.add_row(
            label,
            *[
                " / ".join(
                    f"{v[phase]['mean_ms_by_page'][page]:.1f}" for phase in ("warm", "cold", "miss")
                )
                for page in ("home", "articles", "tags", "authors")
            ],
        )
    console.print(reads)
    if plain_rps:
        same_work = [plain[p]["rps"] for p in ("warm", "cold", "miss")]
        spread = (max(same_work) - min(same_work)) / plain_rps
        results["plain_spread"] = round(spread, 3)
        console.print(
            f"plain Django does the same work in all three phases (no cache): pooled, "
            f"{plain_rps:.0f} req/s is the reference; their spread, {spread:.0%}, is this "
            f"run's noise. Load average before/after each variant: "
            + "; ".join(
                f"{label} {v['load_before'][0]:.1f}/{v['load_after'][0]:.1f}"
                for label, v in variants.items()
                if "load_before" in v and "load_after" in v
            )
        )
    console.print(writes)
    console.print(pages)

    for label, v in ok.items():
        if label != "plain Django":
            inv = v["invalidation"]
            console.print(
                f"{label}: 1 insert made these re-read: {format_pages(inv['insert_rerun_pages'])}; "
                f"1 delete: {format_pages(inv['delete_rerun_pages'])}; "
                f"never cached: {format_pages(inv['baseline_uncached_pages'])}"
            )

    strata = ok.get("Strata query cache")
    ratios: dict = {}
    if strata:
        for peer in ("django-cachalot", "django-cacheops", "plain Django"):
            if peer in ok:
                reference = plain_rps if peer == "plain Django" else ok[peer]["warm"]["rps"]
                ratios[f"warm req/s, strata/{peer}"] = ratio(strata["warm"]["rps"], reference)
        for phase in ("cold", "miss"):
            for peer in ("plain Django", "django-cachalot", "django-cacheops"):
                if peer in ok:
                    reference = plain_rps if peer == "plain Django" else ok[peer][phase]["rps"]
                    ratios[f"{phase} time per page, strata/{peer}"] = ratio(
                        reference, strata[phase]["rps"]
                    )
        for peer in ("plain Django", "django-cachalot", "django-cacheops"):
            if peer in ok:
                ratios[f"write time, strata/{peer}"] = ratio(write_us(strata), write_us(ok[peer]))
                ratios[f"update time, strata/{peer}"] = ratio(
                    strata["write"]["update_us_mean"], ok[peer]["write"]["update_us_mean"]
                )
        for peer in ("django-cachalot", "django-cacheops"):
            if peer in ok:
                ratios[f"queries re-run after 1 insert, strata/{peer}"] = ratio(
                    strata["invalidation"]["insert_rerun_queries"],
                    ok[peer]["invalidation"]["insert_rerun_queries"],
                )
        for name, value in ratios.items():
            console.print(f"{name}: {show(value, '.2f')}")
        peers = [p for p in ("django-cachalot", "django-cacheops") if p in ok]
        cold_cost = ratios.get("cold time per page, strata/plain Django")
        targets = {
            "warm ahead of both peers": len(peers) == 2
            and all(ratios[f"warm req/s, strata/{p}"] > 1 for p in peers),
            "cold miss at most 10% over plain": cold_cost is not None and cold_cost <= 1.10,
            "fewer entries invalidated per write than cachalot": "django-cachalot" in ok
            and strata["invalidation"]["insert_rerun_queries"]
            < ok["django-cachalot"]["invalidation"]["insert_rerun_queries"],
        }
        for name, met in targets.items():
            console.print(f"target {name}: {'[green]met[/]' if met else '[red]not met[/]'}")
        results["targets"] = targets
    results["ratios"] = {k: None if v is None else round(v, 3) for k, v in ratios.items()}


def format_pages(pages: dict[str, int]) -> str:
    """``{url: queries}`` summed by kind of page: "home 1, 21 articles (21 queries)"."""
    if not pages:
        return "nothing"
    kinds: dict[str, list[int]] = {}
    for url, queries in pages.items():
        kinds.setdefault("home" if url == "/" else url.split("/")[1], []).append(queries)
    return ", ".join(
        f"{len(counts)} {kind} page{'s' if len(counts) > 1 else ''} ({sum(counts)} queries)"
        for kind, counts in kinds.items()
    )


if __name__ == "__main__":
    main()
