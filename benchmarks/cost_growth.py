"""How cost grows: with the tags on a page, the rows a write touches, and the data.

    flock /tmp/strata-bench.lock .venv/bin/python benchmarks/cost_growth.py \\
        [--seconds 1.5] [--smoke] [--out benchmarks/results/cost_growth.json]

A PostgreSQL and a Redis of its own on loopback; the demo's models and settings in worker
processes (``benchmarks/_growth_worker.py``), each with one set of Strata's layers on,
requests made in-process through ``PageCacheApplication`` around Django's handler (what an
app server's worker calls; no server, no network between client and Django):

1. Tags per page (1, 10, 100, 1,000): ``/growth/N/`` reads N articles by primary key (100
   to a query). µs per page-cache hit, near cache on and off; µs per warm render (page
   cache off, query results warm), near cache on and off. Proof: every timed hit said
   ``X-Strata: page-hit``; no warm render did, none sent a query to PostgreSQL and the
   query cache counted no miss.
2. Rows per write (1, 100, 1,000, 10,000): a bulk insert of N comments, an update of them,
   their delete, each in a transaction timed to the commit's return, with Strata and with
   plain Django (a process with no Strata layer on, so none of its ORM hooks); the tags
   each write invalidated (``strata.signals.post_invalidation``). Past
   ``WRITE_ROW_LIMIT`` (1,000) a write invalidates its table instead of each row.
3. Memory: Redis's ``MEMORY USAGE`` of a cached page, of each version, query result and
   fragment it stored, with the cache emptied before each page; the near cache's bytes per
   entry of each kind (its own charge: the value's bytes and 160 for the entry).
4. The demo's home and newest article page on the default seed (5,000 articles, 50,000
   comments) and on ten times as much (50,000 / 500,000, seeded here in parallel): a
   page-cache hit (near cache on, off), a warm render (on, off), a cold render (Redis
   emptied before each request: every cache misses, the page and its parts are stored)
   and plain Django (no Strata layer).

Figures are the median of blocks of 10 requests (a cold render: of single requests); a
write's, the median of its rounds. ``--smoke``: small seeds and sizes, a fraction of a
second each (for ``tests/bench/test_cost_growth_smoke.py``); its JSON goes to a temporary
file unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import machine, write_results  # noqa: E402  isort: skip

DEMO = HERE.parent / "demo"
HOST = "127.0.0.1"
TAGS = (1, 10, 100, 1000)
ROWS = (1, 100, 1000, 10_000)
SEEDS = {"default": (5_000, 50_000), "10x": (50_000, 500_000)}
SMOKE_TAGS = (1, 10)
SMOKE_ROWS = (1, 1001)
SMOKE_SEEDS = {"default": (100, 1_000)}
# The workers of one data set: (label, environment). Each is one process.
WORKERS = {
    "hit near": {"GROWTH_PAGE_CACHE": "1", "GROWTH_NEAR_CACHE": "1"},
    "hit redis": {"GROWTH_PAGE_CACHE": "1", "GROWTH_NEAR_CACHE": "0"},
    "warm near": {"GROWTH_PAGE_CACHE": "0", "GROWTH_NEAR_CACHE": "1"},
    "warm redis": {"GROWTH_PAGE_CACHE": "0", "GROWTH_NEAR_CACHE": "0"},
    "plain": {"GROWTH_PLAIN": "1", "GROWTH_NEAR_CACHE": "0"},
}


_BEGAN = time.monotonic()


def say(text: str) -> None:
    """A progress line, with the seconds since the start."""
    print(f"[{time.monotonic() - _BEGAN:6.1f} s] {text}", flush=True)


class Worker:
    """A ``_growth_worker`` process: a JSON command a line in, a JSON answer a line out."""

    def __init__(self, label: str, env: dict[str, str], log: Path):
        self.label, self.log = label, log
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import _growth_worker; _growth_worker.main()"],
            cwd=DEMO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )

    def ask(self, op: str, **arguments):
        self.send(op, **arguments)
        return self.receive()

    def send(self, op: str, **arguments) -> None:
        assert self.process.stdin
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()

    def receive(self):
        assert self.process.stdout
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            raise RuntimeError(
                f"worker {self.label} exited ({self.process.returncode}):\n"
                + self.log.read_text()[-4000:]
            )
        return json.loads(line)

    def quit(self) -> None:
        """Ask it to quit (once), without waiting."""
        if self.process.poll() is None and self.process.stdin and not self.process.stdin.closed:
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.close()
            except (OSError, ValueError):
                pass

    def stop(self) -> None:
        """Ask it to quit; kill it (by its own pid) if it does not."""
        if self.process.poll() is None:
            try:
                self.quit()
                self.process.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def django_env(database_url: str, cache_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=database_url,
        CACHE_URL=cache_url,
        PYTHONPATH=os.pathsep.join([str(HERE), str(DEMO), str(HERE.parent)]),
        PYTHONUNBUFFERED="1",
    )
    return env


def start_workers(database_url: str, cache_url: str, run_dir: Path, name: str, cleanup):
    """The five workers of one data set; ``cleanup`` stops each by its own pid."""
    env = django_env(database_url, cache_url)
    started: dict[str, Worker] = {}
    for label, flags in WORKERS.items():
        log = run_dir / f"{name}-{label.replace(' ', '-')}.log"
        started[label] = worker = Worker(f"{name} {label}", {**env, **flags}, log)
        cleanup.callback(worker.stop)
    return started


def tags_per_page(workers: dict[str, Worker], sizes, seconds: float, block: int) -> list[dict]:
    """Part 1: a page-cache hit and a warm render of ``/growth/N/``."""
    rows = []
    for n in sizes:
        path = f"/growth/{n}/"
        warm = workers["warm near"]
        warm.ask("timed", path=path, seconds=0, most=1)  # query results stored
        tags = warm.ask("tags", path=path)
        for label in ("hit near", "hit redis"):
            workers[label].ask("timed", path=path, seconds=0, most=2)  # stored, then a hit
        row = {"n": n, **tags}
        for label in ("hit near", "hit redis", "warm near", "warm redis"):
            row[label] = workers[label].ask(
                "timed", path=path, seconds=seconds, most=100_000, block=block
            )
        rows.append(row)
        print(
            f"  {n:>5} articles, {tags['tags']} tags: hit {row['hit near']['us']} µs "
            f"(Redis {row['hit redis']['us']}), warm {row['warm near']['us']} µs "
            f"(Redis {row['warm redis']['us']})",
            flush=True,
        )
    return rows


def pages(workers: dict[str, Worker], paths: dict[str, str], seconds: float, block: int) -> dict:
    """Part 4: every tier of the demo's home and article page on one data set."""
    found: dict = {}
    for page, path in paths.items():
        for label in ("hit near", "hit redis", "warm near", "warm redis", "plain"):
            workers[label].ask("timed", path=path, seconds=0, most=3)  # stored, warm
        row = {
            label: workers[label].ask(
                "timed", path=path, seconds=seconds, most=100_000, block=block
            )
            for label in ("hit near", "hit redis", "warm near", "warm redis", "plain")
        }
        # Redis emptied before each request: it flushes the other workers' copies too.
        row["cold"] = workers["hit near"].ask(
            "timed", path=path, seconds=seconds * 2, most=200, flush=True
        )
        found[page] = row
        print(
            f"  {page}: hit {row['hit near']['us']} µs (Redis {row['hit redis']['us']}), "
            f"warm {row['warm near']['us']} µs (Redis {row['warm redis']['us']}), "
            f"cold {row['cold']['us']} µs, plain Django {row['plain']['us']} µs",
            flush=True,
        )
    return found


def memory(worker: Worker, paths: dict[str, str]) -> dict:
    """Part 3: Redis emptied, one page requested three times (stored, then hits), its keys
    measured; page after page."""
    return {name: worker.ask("memory", path=path) for name, path in paths.items()}


def writes(strata: Worker, plain: Worker, sizes, article_id: int, user_id: int, smoke: bool):
    """Part 2: insert, update, delete of N rows; Strata and plain Django, round by round."""
    rows = []
    for n in sizes:
        rounds = 1 if smoke else (3 if n >= 10_000 else 7)
        runs: dict[str, list] = {"strata": [], "plain": []}
        for _ in range(rounds):
            for label, worker in (("strata", strata), ("plain", plain)):
                runs[label].append(
                    worker.ask("writes", n=n, article_id=article_id, user_id=user_id)
                )
        row: dict = {"n": n, "rounds": rounds}
        for step in ("insert", "update", "delete"):
            row[step] = {
                "strata_us": statistics.median(r[step]["us"] for r in runs["strata"]),
                "plain_us": statistics.median(r[step]["us"] for r in runs["plain"]),
                "tags": runs["strata"][-1][step]["tags"],
                "row_tags": runs["strata"][-1][step]["row_tags"],
                "table_tag": runs["strata"][-1][step]["table_tag"],
                "plain_tags": runs["plain"][-1][step]["tags"],
            }
        rows.append(row)
        print(
            f"  {n:>6} rows: "
            + ", ".join(
                f"{step} {row[step]['strata_us'] / 1000:.2f} ms "
                f"(plain {row[step]['plain_us'] / 1000:.2f}, {row[step]['tags']} tags)"
                for step in ("insert", "update", "delete")
            ),
            flush=True,
        )
    return rows


def prove(results: dict) -> list[dict]:
    """The checks that every figure is what it says."""
    checks: list[dict] = []

    def check(what: str, ok: bool, detail: object) -> None:
        checks.append({"check": what, "ok": bool(ok), "detail": str(detail)[:400]})

    def hits(label: str, figure: dict) -> None:
        words = figure["x_strata"]
        check(f"{label}: every response a page-cache hit", set(words) == {"page-hit"}, words)
        check(f"{label}: no query", figure["queries_per_request"] == 0, figure)

    def warm(label: str, figure: dict) -> None:
        words, qc = figure["x_strata"], figure["query_cache"]
        check(f"{label}: no page-cache hit", "page-hit" not in words, words)
        check(
            f"{label}: no query, no query-cache miss",
            figure["queries_per_request"] == 0 and not qc.get("miss"),
            figure,
        )

    def near(label: str, figure: dict) -> None:
        counts = figure.get("near_cache") or {}
        check(
            f"{label}: every lookup from the near cache",
            counts.get("hits", 0) > 0 and counts.get("misses", 1) == 0,
            counts,
        )

    for row in results["tags_per_page"]:
        where = f"/growth/{row['n']}/"
        hits(f"{where} hit, near cache", row["hit near"])
        near(f"{where} hit, near cache", row["hit near"])
        hits(f"{where} hit, Redis", row["hit redis"])
        check(f"{where} hit, Redis: no near cache", "near_cache" not in row["hit redis"], "")
        warm(f"{where} warm, near cache", row["warm near"])
        warm(f"{where} warm, Redis", row["warm redis"])
        check(f"{where}: a row tag per article", row["row_tags"] >= row["n"], row["tags"])
    for data, found in results["demo"].items():
        for page, row in found["pages"].items():
            where = f"{data} {page}"
            hits(f"{where} hit, near cache", row["hit near"])
            hits(f"{where} hit, Redis", row["hit redis"])
            warm(f"{where} warm, near cache", row["warm near"])
            warm(f"{where} warm, Redis", row["warm redis"])
            cold = row["cold"]
            # Redis is emptied before each (cache.clear() waits until the near cache has
            # heard the flush): a hit would be a copy that outlived it.
            misses = cold["x_strata"].get("page-miss", 0)
            check(f"{where} cold: every page missed", misses == cold["requests"], cold["x_strata"])
            check(f"{where} cold: queries ran", cold["queries_per_request"] > 0, cold)
            plain = row["plain"]
            check(
                f"{where} plain: no Strata layer",
                set(plain["x_strata"]) == {"-"}
                and plain["query_cache"] == {}
                and plain["queries_per_request"] > 0,
                plain,
            )
    limit = results["write_row_limit"]
    for row in results["writes"]:
        for step in ("insert", "update", "delete"):
            figure = row[step]
            check(
                f"{row['n']} rows {step}: plain Django bumped no tag",
                figure["plain_tags"] == 0,
                figure,
            )
            if row["n"] > limit:
                check(
                    f"{row['n']} rows {step}: past WRITE_ROW_LIMIT, the table and no row tag",
                    figure["row_tags"] == 0 and figure["table_tag"],
                    figure,
                )
            else:
                check(
                    f"{row['n']} rows {step}: a row tag per row at least",
                    figure["row_tags"] >= row["n"],
                    figure,
                )
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per figure")
    parser.add_argument("--smoke", action="store_true", help="small seeds and sizes")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is None:
        args.out = (
            Path(tempfile.gettempdir()) / "cost_growth_smoke.json"
            if args.smoke
            else HERE / "results" / "cost_growth.json"
        )
    seconds = 0.1 if args.smoke else args.seconds
    block = 2 if args.smoke else 10  # requests a timing block
    tag_sizes, row_sizes = (SMOKE_TAGS, SMOKE_ROWS) if args.smoke else (TAGS, ROWS)
    seeds = SMOKE_SEEDS if args.smoke else SEEDS

    from strata.stack.ports import free_port
    from strata.stack.postgres import PostgreSQL, find_postgres_bindir
    from strata.stack.program import find_program
    from strata.stack.redis import Redis

    bindir, redis_server = find_postgres_bindir(), find_program("redis-server")
    if bindir is None or redis_server is None:
        raise SystemExit("needs PostgreSQL (initdb, postgres) and redis-server installed")
    began = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="strata-bench-growth-", dir="/tmp"))
    run_dir.chmod(0o755)
    taken: set[int] = set()
    pg = PostgreSQL("postgres", run_dir, HOST, free_port(taken), bindir)
    cache = Redis("redis", run_dir, HOST, free_port(taken), redis_server)
    results: dict = {
        "machine": machine(packages=["django-strata", "django", "redis", "psycopg"]),
        "smoke": args.smoke,
        "seconds_per_figure": seconds,
        # The machine is shared: its load (1, 5, 15 minutes) says how quiet the run was.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "demo": {},
    }
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, run_dir, ignore_errors=True)
        pg.start()
        cleanup.callback(pg.stop)
        cache.start()
        cleanup.callback(cache.stop)
        pg.wait_ready()
        cache.wait_ready()
        results["machine"]["postgresql"] = pg.version()
        results["machine"]["redis"] = cache.version()
        import psycopg

        base_url = pg.url.rsplit("/", 1)[0]
        urls = {"default": pg.url, "10x": f"{base_url}/strata_10x"}
        if "10x" in seeds:
            with psycopg.connect(pg.url, autocommit=True) as connection:
                connection.execute('CREATE DATABASE "strata_10x"')
        redis_base = cache.url.rsplit("/", 1)[0]
        workers = {
            name: start_workers(urls[name], f"{redis_base}/{index}", run_dir, name, cleanup)
            for index, name in enumerate(seeds)
        }
        say(f"PostgreSQL {pg.url}, Redis {cache.url}; seeding {seeds} in parallel")
        for name, (articles, comments) in seeds.items():
            workers[name]["plain"].send(
                "seed", articles=articles, comments=comments, fast_hasher=args.smoke
            )
        for name, (articles, comments) in seeds.items():
            seeded = workers[name]["plain"].receive()
            results["demo"][name] = {"articles": articles, "comments": comments, **seeded}
            say(f"  {name}: {seeded}")
        for name, ours in workers.items():
            described = {label: w.ask("describe") for label, w in ours.items()}
            say(f"{len(ours)} workers ready on the {name} data")
            about = described["hit near"]
            results["demo"][name]["workers"] = described
            paths = {"home": "/", "article": about["article_path"]}
            if name == "default":
                results["write_row_limit"] = about["write_row_limit"]
                say("1. tags per page")
                results["tags_per_page"] = tags_per_page(ours, tag_sizes, seconds, block)
            say(f"4. the demo's pages, {name} data")
            results["demo"][name]["pages"] = pages(ours, paths, seconds, block)
            if name == "default":
                say("3. memory")
                memory_paths = {**paths, **{f"/growth/{n}/": f"/growth/{n}/" for n in tag_sizes}}
                results["memory"] = memory(ours["hit near"], memory_paths)
                say("2. rows per write")
                results["writes"] = writes(
                    ours["hit near"],
                    ours["plain"],
                    row_sizes,
                    about["article_id"],
                    about["user_id"],
                    args.smoke,
                )
            for worker in ours.values():
                worker.quit()  # all at once: each takes a moment to close its connections
            for worker in ours.values():
                worker.stop()  # the next data set's workers measure alone
    results["seconds"] = round(time.monotonic() - began, 1)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    checks = prove(results)
    results["proof"] = {"ok": all(c["ok"] for c in checks), "checks": checks}
    write_results(args.out, results)
    report(results)
    print(f"wrote {args.out} in {results['seconds']} s")
    if not results["proof"]["ok"]:
        for c in checks:
            if not c["ok"]:
                print(f"FAILED: {c['check']}: {c['detail']}")
        raise SystemExit("some figure is not what it says")


def report(results: dict) -> None:
    """The tables, in Markdown."""
    print(
        "\n| articles on the page | tags | hit, near cache | hit, Redis | warm render, near "
        "cache | warm render, Redis |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for row in results["tags_per_page"]:
        print(
            f"| {row['n']:,} | {row['tags']:,} | {row['hit near']['us']:,} µs | "
            f"{row['hit redis']['us']:,} µs | {row['warm near']['us']:,} µs | "
            f"{row['warm redis']['us']:,} µs |"
        )
    print("\n| rows | write | Strata | plain Django | tags invalidated |")
    print("|---:|---|---:|---:|---:|")
    for row in results["writes"]:
        for step in ("insert", "update", "delete"):
            f = row[step]
            note = " (table)" if f["table_tag"] and not f["row_tags"] else ""
            print(
                f"| {row['n']:,} | {step} | {f['strata_us'] / 1000:,.2f} ms | "
                f"{f['plain_us'] / 1000:,.2f} ms | {f['tags']:,}{note} |"
            )
    print(
        "\n| page | Redis: page | versions (each) | query results (each) | fragments (each) | "
        "near cache: entries, bytes |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in results["memory"].items():
        r = m["redis"]

        def each(kind: str, r: dict = r) -> str:
            k = r[kind]
            return f"{k['keys']} × {k['bytes_mean']:,} B" if k["keys"] else "—"

        near = m.get("near_cache", {}).get("figures", {})
        print(
            f"| {name} | {r['page']['bytes_total']:,} B | {each('version')} | "
            f"{each('query result')} | {each('fragment')} | "
            f"{near.get('entries', 0)}, {near.get('bytes', 0):,} B |"
        )
    print(
        "\n| data | page | hit, near | hit, Redis | warm, near | warm, Redis | cold | "
        "plain Django |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for found in results["demo"].values():
        for page, row in found["pages"].items():
            cells = [
                f"{row[k]['us'] / 1000:,.3f} ms"
                for k in ("hit near", "hit redis", "warm near", "warm redis", "cold", "plain")
            ]
            print(
                f"| {found['articles']:,} / {found['comments']:,} | {page} | "
                + " | ".join(cells)
                + " |"
            )


if __name__ == "__main__":
    main()
