"""Do a cron job's writes reach the edge? Issue 17's measurement, rerun.

    .venv/bin/python benchmarks/writer_reach.py [--seconds 30] [--smoke]

The demo on a stack of its own (two app servers, one Varnish, the purger, HAProxy). For
``--seconds``, a management command (``manage.py shell -c``: one process, as a cron job or
an import script runs) changes one article's title again and again (``--pause`` between
edits, each its own transaction, acknowledged by a line after its commit), while 4
readers read that article's page through the load balancer back to back. The writer is
given only ``DATABASE_URL`` + ``CACHE_URL`` (and ``DJANGO_SETTINGS_MODULE``,
``PYTHONPATH``), then, for comparison, the app servers' whole environment (``STRATA_*``).

A read is stale when it does not show the newest title acknowledged before it started;
its age runs from the commit of the oldest title it misses (``strata check``'s rule).
Reported per writer: edits, reads, reads stale after 0 / 50 / 1000 ms, the worst age.
Results go to ``benchmarks/results/writer_reach.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import RESULTS, machine, use_repository, write_results

use_repository()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from tests.helpers import demo_stack  # noqa: E402
from tests.scenarios.bus.helpers import (  # noqa: E402
    Readers,
    articles,
    stale_ages,
    through_lb,
    title_of,
    writer_env,
)

READERS = 4


# One writer process edits for the whole run (as an import script or a cron job's loop
# does): each edit is a transaction of its own, acknowledged by a line after its commit.
EDITS = """
import sys, time, uuid
from newsroom.models import Article
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    title = "reach-" + uuid.uuid4().hex[:10]
    article = Article.objects.get(pk={pk})
    article.title = title
    article.save(update_fields=["title"])
    print("COMMITTED " + title, flush=True)
    time.sleep({pause})
"""


def run(stack, pk: int, path: str, seconds: float, env: dict[str, str], pause: float) -> dict:
    """Edits of article ``pk`` for ``seconds`` by a writer with ``env``, under READERS
    readers of ``path``."""
    original = title_of(through_lb(stack).get(path).text) or ""
    writes: list[tuple[float, str]] = []
    code = EDITS.format(seconds=seconds, pk=pk, pause=pause)
    with Readers(stack, path, count=READERS, limit=1_000_000, pause=0) as readers:
        writer = subprocess.Popen(
            [sys.executable, "-m", "django", "shell", "--no-imports", "-c", code],
            cwd=stack.config.project.directory,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert writer.stdout is not None
            for line in writer.stdout:
                if line.startswith("COMMITTED "):
                    writes.append((time.monotonic(), line.split()[1]))
            writer.wait(seconds + 60)
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait(5)
        time.sleep(1.5)  # reads after the last edit too
    ages = stale_ages(readers.reads, writes, original)
    return {
        "edits": len(writes),
        "writer_exit": writer.returncode,
        "reads": len(readers.reads),
        "reads_hit_in_varnish": sum(1 for r in readers.reads if r.x_cache == "HIT"),
        "read_errors": readers.errors,
        "stale_after_0ms": len(ages),
        "stale_after_50ms": sum(1 for a in ages if a >= 0.05),
        "stale_after_1000ms": sum(1 for a in ages if a >= 1.0),
        "worst_s": round(max(ages), 3) if ages else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="of edits, per writer")
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between edits")
    parser.add_argument("--smoke", action="store_true", help="1.5 s per writer, one app server")
    parser.add_argument(
        "--only-db-cache", action="store_true", help="skip the whole-environment writer"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "writer_reach.json")
    args = parser.parse_args()
    if args.smoke:
        args.seconds = 1.5
    rows = []
    app_servers = 1 if args.smoke else 2
    with demo_stack(app_servers=app_servers, workers=2, accelerators=1) as stack:
        choices = articles(stack, 4)
        writers = [("DATABASE_URL + CACHE_URL", writer_env(stack))]
        if not args.only_db_cache:
            full = stack.config.project.environment()
            writers.append(("the app servers' whole STRATA_* environment", full))
        for index, (name, env) in enumerate(writers):
            pk, path = choices[index]
            through_lb(stack).get(path)  # in Varnish before the first edit
            rows.append({"writer": name, **run(stack, pk, path, args.seconds, env, args.pause)})
            time.sleep(3)  # the last edit's second purge goes by
        description = machine(stack)

    print(f"{args.seconds:.0f} s of title edits by a management command, {READERS} readers:")
    print(
        f"{'writer':<46}{'edits':>6}{'reads':>9}  {'stale after 0 / 50 / 1000 ms':<30}{'worst':>9}"
    )
    for row in rows:
        stale = (
            f"{row['stale_after_0ms']} / {row['stale_after_50ms']} / {row['stale_after_1000ms']}"
        )
        print(
            f"{row['writer']:<46}{row['edits']:>6}{row['reads']:>9}  {stale:<30}"
            f"{row['worst_s'] * 1000:>7.0f} ms"
        )
    write_results(
        args.out,
        {
            "benchmark": "writer_reach",
            "seconds": args.seconds,
            "readers": READERS,
            "smoke": args.smoke,
            "machine": description,
            "writers": rows,
        },
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
