"""Strata's query cache beside django-cachalot and django-cacheops, on the demo's pages.

Each variant runs in a process of its own with its own settings (``benchmarks/peer_settings``:
the page and fragment caches off in every one) against the same PostgreSQL and the same
Redis, each in a Redis database of its own. The processes take turns, a few requests
each, round after round, so that a shared machine's load falls on all of them alike; a
figure is the median over the rounds, and a ratio the median of each round's ratio.

On the home page and one article page, three phases:

1. warm: every query result cached; the figure that counts is the time the process spent
   per request (its throughput), the stores after the response included;
2. cold: the variant's cache emptied before each request (every read misses); the figure
   that counts is the time to the response (Strata stores after it), beside plain Django;
3. miss after invalidation: results thrown away, bookkeeping kept (Strata's tag versions,
   cachalot's table versions; cacheops keeps none, so its two misses are alike).

Then, once per variant over 41 pages: microseconds of one ``Comment`` insert, update and
delete, and how many queries reach the database in the round of pages after one insert.

Every figure is proven to be what it says (``proof`` in the JSON, checked on each page and
phase with one request more): no variant's response came from the page cache
(``X-Strata``); plain Django sent no command to Redis and ran every query; a warm request
sent no query to the database (Strata: its hit counter, no miss); a cold one ran as many
queries as plain Django (Strata: no hit).

    flock /tmp/strata-bench.lock .venv/bin/python benchmarks/querycache_peers.py \\
        [--rounds 15] [--smoke] [--json benchmarks/results/querycache_peers.json]

``--smoke`` (a small seed, one round of two requests; for the tests) writes its JSON to
a temporary file unless ``--json`` is given. The peers are installed beside Strata, not
declared by it: ``.venv/bin/pip install -e .[bench]``. A peer that is missing or fails on
this Django is reported as such and the others still run. Requests are made in-process
through ``newsroom_site.wsgi.application``: Django's own cost, with no network or server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
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
    # label, peer_settings module, distribution, Redis database (cacheops uses the next)
    ("plain Django", "plain", None, 1),
    ("Strata query cache", "strata_qc", None, 2),
    ("django-cachalot", "cachalot", "django-cachalot", 3),
    ("django-cacheops", "cacheops", "django-cacheops", 4),
    # Strata's whole warm path: the query cache and {% cached %} fragments (no page cache).
    ("Strata query cache + fragments", "strata_fragments", None, 6),
]
PLAIN, STRATA = "plain Django", "Strata query cache"
FULL = "Strata query cache + fragments"
PEERS = ("django-cachalot", "django-cacheops")
PHASES = ("warm", "cold", "miss")
PAGES = ("home", "article")
# Requests per turn: about a tenth of a second of each page for each variant.
BURST = {"home": 3, "article": 15}
SMOKE_SEED = ["--articles", "200", "--comments", "2000", "--authors", "20", "--tags", "12"]
TARGETS = {
    "warm throughput, strata/django-cachalot": 1.3,
    "warm throughput, strata/django-cacheops": 1.1,
}
COLD_TARGET = 1.10  # at most this times plain Django's time to the response


def django_env(database_url: str, cache_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        CACHE_URL=cache_url,
        PYTHONPATH=os.pathsep.join([str(DEMO), str(HERE)]),
        PYTHONUNBUFFERED="1",
        # The query caches alone: the demo's page and fragment caches would answer first
        # (the peer settings turn them off too).
        STRATA_PAGE_CACHE="0",
        STRATA_FRAGMENT_CACHE="0",
    )
    return env


def seed(env: dict[str, str], smoke: bool = False) -> None:
    env = {**env, "DJANGO_SETTINGS_MODULE": "newsroom_site.settings", "STRATA_QUERY_CACHE": "0"}
    seed_command = ["seed_newsroom", "--if-empty", *(SMOKE_SEED if smoke else [])]
    for command in (["migrate", "--noinput"], seed_command):
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


class Worker:
    """One variant's process: a command a line on its stdin, an answer a line on stdout."""

    def __init__(self, label: str, module: str, env: dict[str, str], log: Path):
        self.label, self.module, self.log = label, module, log
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_querycache_worker.py"), module],
            cwd=DEMO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )

    def ask(self, op: str, **arguments):
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            raise RuntimeError(
                f"{self.label} exited ({self.process.returncode}):\n{self.log.read_text()[-4000:]}"
            )
        return json.loads(line)

    def stop(self) -> None:
        """Ask it to quit; kill it (by its pid) if it does not."""
        if self.process.poll() is None:
            try:
                self.ask_quit()
                self.process.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    def ask_quit(self) -> None:
        assert self.process.stdin
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.close()


def median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def show(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def measure(workers: dict[str, Worker], urls: dict[str, str], rounds: int, smoke: bool) -> dict:
    """Round after round, each variant in turn (the order rotating): a burst of each page
    in each phase. Returns ``{label: {page: {phase: [burst, ...]}}}``."""
    bursts: dict = {
        label: {page: {phase: [] for phase in PHASES} for page in PAGES} for label in workers
    }
    labels = list(workers)
    for index in range(rounds):
        order = labels[index % len(labels) :] + labels[: index % len(labels)]
        for page in PAGES:
            n = 2 if smoke else BURST[page]
            for phase in PHASES:
                for label in order:
                    answer = workers[label].ask("burst", url=urls[page], phase=phase, n=n)
                    bursts[label][page][phase].append(answer)
    return bursts


def prove(workers: dict[str, Worker], urls: dict[str, str]) -> tuple[dict, list[dict]]:
    """One request more of each page and phase, counted; the checks that it measured what
    it says. Returns ``(evidence, checks)``."""
    found: dict = {}
    checks: list[dict] = []

    def check(label: str, page: str, phase: str, what: str, ok: bool, detail: str) -> None:
        checks.append(
            {
                "variant": label,
                "page": page,
                "phase": phase,
                "check": what,
                "ok": bool(ok),
                "detail": detail,
            }
        )

    for label, worker in workers.items():
        found[label] = {page: {} for page in PAGES}
        for page in PAGES:
            for phase in PHASES:
                found[label][page][phase] = worker.ask("evidence", url=urls[page], phase=phase)
        words = worker.ask("words")
        check(
            label,
            "*",
            "*",
            "no page-cache answer (X-Strata of every response)",
            not {"page-hit", "page-stale", "page-miss"} & set(words),
            f"X-Strata seen: {words}",
        )
    plain = found.get(PLAIN)
    for label, pages in found.items():
        for page, phases in pages.items():
            plain_queries = plain[page]["warm"]["queries"] if plain else None
            for phase, e in phases.items():
                stats, queries, redis = e["strata_stats"], e["queries"], e["redis"]
                detail = f"{queries} queries, Redis {redis}, Strata {stats}"
                if label == PLAIN:
                    check(
                        label,
                        page,
                        phase,
                        "no cache: no Redis command, no Strata counter",
                        redis["commands"] == 0 and not stats,
                        detail,
                    )
                    continue
                if phase == "warm":
                    check(
                        label,
                        page,
                        phase,
                        "every read from the cache: no query",
                        queries == 0,
                        detail,
                    )
                    if label == FULL:
                        pass  # fragments answer before any query: no query is the proof
                    elif label == STRATA:
                        check(
                            label,
                            page,
                            phase,
                            "Strata counted hits and no miss",
                            stats.get("hit", 0) > 0 and not stats.get("miss"),
                            detail,
                        )
                    else:
                        check(
                            label, page, phase, "Redis key hits", redis["keyspace_hits"] > 0, detail
                        )
                else:
                    check(
                        label,
                        page,
                        phase,
                        "every read missed: as many queries as plain Django",
                        queries == plain_queries,
                        detail + f"; plain Django: {plain_queries}",
                    )
                    if label in (STRATA, FULL):
                        check(
                            label,
                            page,
                            phase,
                            "Strata counted misses and no hit",
                            stats.get("miss", 0) > 0 and not stats.get("hit"),
                            detail,
                        )
    return found, checks


def summarize(bursts: dict) -> tuple[dict, dict]:
    """Medians per variant, page and phase, and the medians of each round's ratios."""
    summary: dict = {}
    for label, pages in bursts.items():
        summary[label] = {
            page: {
                phase: {
                    "response_ms": round(median([b["response_ms"] for b in runs]), 3),
                    "busy_ms": round(median([b["busy_ms"] for b in runs]), 3),
                    "bursts": len(runs),
                    "requests": sum(b["n"] for b in runs),
                }
                for phase, runs in phases.items()
            }
            for page, phases in pages.items()
        }
    ratios: dict = {}

    def per_round(a: str, b: str, page: str, phase: str, key: str) -> float | None:
        if a not in bursts or b not in bursts:
            return None
        pairs = zip(bursts[a][page][phase], bursts[b][page][phase], strict=True)
        return median([ratio(x[key], y[key]) for x, y in pairs])

    for page in PAGES:
        for peer in PEERS:
            # Throughput ratio: the peer's busy time per request over Strata's.
            ratios[f"{page}: warm throughput, strata/{peer}"] = per_round(
                peer, STRATA, page, "warm", "busy_ms"
            )
        ratios[f"{page}: warm throughput, strata/plain Django"] = per_round(
            PLAIN, STRATA, page, "warm", "busy_ms"
        )
        for peer in PEERS:
            ratios[f"{page}: warm throughput, strata+fragments/{peer}"] = per_round(
                peer, FULL, page, "warm", "busy_ms"
            )
        for label in (STRATA, FULL, *PEERS):
            for phase in ("cold", "miss"):
                ratios[f"{page}: {phase} time to response, {label}/plain Django"] = per_round(
                    label, PLAIN, page, phase, "response_ms"
                )
            ratios[f"{page}: cold busy time, {label}/plain Django"] = per_round(
                label, PLAIN, page, "cold", "busy_ms"
            )
    return summary, {k: None if v is None else round(v, 3) for k, v in ratios.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="turns of every variant")
    parser.add_argument("--smoke", action="store_true", help="small seed, one short round")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.json is None:
        args.json = (
            Path(tempfile.gettempdir()) / "querycache_peers_smoke.json"
            if args.smoke
            else Path("benchmarks/results/querycache_peers.json")
        )
    rounds = 1 if args.smoke else args.rounds

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
        "smoke": args.smoke,
        "rounds": rounds,
        "variants": {},
    }
    workers: dict[str, Worker] = {}
    try:
        console.print(f"starting PostgreSQL on {HOST}:{pg_port} and Redis on {HOST}:{redis_port}")
        pg.start()
        pg.wait_ready()
        cache.start()
        cache.wait_ready()
        results["machine"]["postgresql"] = pg.version()
        results["machine"]["redis"] = cache.version()
        base = cache.url.rsplit("/", 1)[0]
        console.print(
            "migrating and seeding the newsroom" + (" (small seed)" if args.smoke else "")
        )
        seed(django_env(pg.url, f"{base}/0"), smoke=args.smoke)
        for label, module, distribution, db in VARIANTS:
            if distribution and package_version(distribution) is None:
                results["variants"][label] = {"error": f"{distribution} is not installed"}
                console.print(f"[bold]{label}[/]: [red]not installed[/], skipped")
                continue
            env = django_env(pg.url, f"{base}/{db}")
            workers[label] = Worker(label, module, env, run_dir / f"{module}.log")
        for label, worker in list(workers.items()):
            try:
                results["variants"][label] = worker.ask("describe")
            except RuntimeError as exc:
                results["variants"][label] = {"error": str(exc)}
                console.print(f"[red]{label} failed[/]: {exc}", markup=False)
                del workers[label]
        some = next(iter(workers.values()), None)
        if some is None:
            raise SystemExit("no variant started")
        all_urls = results["variants"][some.label]["urls"]
        urls = {"home": all_urls[0], "article": all_urls[1]}
        results["pages"] = urls
        console.print(
            f"{rounds} round(s) of {', '.join(workers)} on {urls['home']} and {urls['article']}"
        )
        bursts = measure(workers, urls, rounds, args.smoke)
        evidence, checks = prove(workers, urls)
        for label, worker in workers.items():
            console.print(f"[bold]{label}[/]: writes and invalidation")
            variant = results["variants"][label]
            variant["bursts"] = bursts[label]
            variant["evidence"] = evidence[label]
            variant["write"] = worker.ask("writes", seconds=0.3 if args.smoke else 3)
            variant["invalidation"] = worker.ask("invalidation")
        summary, ratios = summarize(bursts)
        for label, figures in summary.items():
            results["variants"][label]["figures"] = figures
        results["ratios"] = ratios
        results["proof"] = {"ok": all(c["ok"] for c in checks), "checks": checks}
    finally:
        for worker in workers.values():
            worker.stop()  # each by its own process
        cache.stop()  # each stops only the process it started, if any
        pg.stop()
        shutil.rmtree(run_dir, ignore_errors=True)

    report(results)
    write_results(args.json, results)
    console.print(f"wrote {args.json}")
    if not results["proof"]["ok"]:
        raise SystemExit("some figure is not what it says: see the failed checks above")


def percent_over(cost: float | None) -> str:
    return "—" if cost is None else f"{(cost - 1) * 100:+.1f}%"


def write_us(variant: dict) -> float:
    """Mean microseconds of one insert, one update and one delete together."""
    write = variant["write"]
    return write["insert_us_mean"] + write["update_us_mean"] + write["delete_us_mean"]


def report(results: dict) -> None:
    variants = results["variants"]
    ok = {label: v for label, v in variants.items() if "figures" in v}
    ratios = results.get("ratios", {})
    pages = Table(
        title=f"ms per request (median of {results['rounds']} round(s)), "
        f"{results['machine']['cpus']} cores: to the response / process busy"
    )
    pages.add_column("variant")
    for page in PAGES:
        for phase in PHASES:
            pages.add_column(f"{page} {phase}", justify="right")
    for label, v in variants.items():
        if label not in ok:
            pages.add_row(label, f"[red]{v.get('error', 'failed')}[/]", *[""] * 5)
            continue
        pages.add_row(
            label,
            *[
                f"{v['figures'][page][phase]['response_ms']:.2f} / {v['figures'][page][phase]['busy_ms']:.2f}"
                for page in PAGES
                for phase in PHASES
            ],
        )
    console.print(pages)

    targets: dict = {}
    table = Table(title="Ratios (median of each round's ratio)")
    for column in (
        "page",
        "warm thr. vs cachalot",
        "vs cacheops",
        "vs plain",
        "cold time vs plain",
        "cachalot cold",
        "cacheops cold",
        "miss vs plain",
        "+fragments warm vs cachalot",
        "vs cacheops",
    ):
        table.add_column(column, justify="left" if column == "page" else "right")
    for page in PAGES:
        cold = ratios.get(f"{page}: cold time to response, {STRATA}/plain Django")
        table.add_row(
            page,
            show(ratios.get(f"{page}: warm throughput, strata/django-cachalot"), ".2f"),
            show(ratios.get(f"{page}: warm throughput, strata/django-cacheops"), ".2f"),
            show(ratios.get(f"{page}: warm throughput, strata/plain Django"), ".2f"),
            percent_over(cold),
            percent_over(
                ratios.get(f"{page}: cold time to response, django-cachalot/plain Django")
            ),
            percent_over(
                ratios.get(f"{page}: cold time to response, django-cacheops/plain Django")
            ),
            percent_over(ratios.get(f"{page}: miss time to response, {STRATA}/plain Django")),
            show(ratios.get(f"{page}: warm throughput, strata+fragments/django-cachalot"), ".2f"),
            show(ratios.get(f"{page}: warm throughput, strata+fragments/django-cacheops"), ".2f"),
        )
        for name, least in TARGETS.items():
            value = ratios.get(f"{page}: {name}")
            targets[f"{page}: {name} >= {least}"] = value is not None and value >= least
        targets[f"{page}: cold time to response, strata/plain <= {COLD_TARGET}"] = (
            cold is not None and cold <= COLD_TARGET
        )
    console.print(table)
    for name, met in targets.items():
        console.print(f"target {name}: {'[green]met[/]' if met else '[red]not met[/]'}")
    results["targets"] = targets

    writes = Table(title="Writes: one comment on one article, cache warm (41 pages)")
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
    plain_write = write_us(ok[PLAIN]) if PLAIN in ok else None
    for label, v in ok.items():
        inv = v["invalidation"]
        cached = label != PLAIN
        writes.add_row(
            label,
            f"{v['write']['insert_us_mean']:.0f}",
            f"{v['write']['update_us_mean']:.0f}",
            f"{v['write']['delete_us_mean']:.0f}",
            percent_over(ratio(write_us(v), plain_write)) if cached else "—",
            str(inv["baseline_queries_per_round"]),
            str(inv["insert_rerun_queries"]) if cached else "—",
            str(inv["delete_rerun_queries"]) if cached else "—",
            "yes" if inv["fresh_after_insert"] and inv["fresh_after_delete"] else "[red]NO[/]",
        )
    console.print(writes)

    proof = results.get("proof", {"checks": []})
    failed = [c for c in proof["checks"] if not c["ok"]]
    console.print(
        f"proof: {len(proof['checks']) - len(failed)} of {len(proof['checks'])} checks passed"
        + (
            ""
            if failed
            else " (no page-cache answer anywhere; plain used no cache; warm hit; cold missed)"
        )
    )
    for c in failed:
        console.print(
            f"[red]FAILED[/] {c['variant']} {c['page']} {c['phase']}: {c['check']} ({c['detail']})",
            markup=False,
        )
    for label in ok:
        e = ok[label]["evidence"]
        console.print(
            f"{label}: queries warm/cold/miss: "
            + "; ".join(
                f"{page} " + "/".join(str(e[page][ph]["queries"]) for ph in PHASES)
                for page in PAGES
            )
        )


if __name__ == "__main__":
    main()
