"""One variant of ``querycache_peers.py``, measured in a process of its own.

    python benchmarks/_querycache_worker.py VARIANT --seconds S --out result.json

VARIANT names a module of ``benchmarks/peer_settings`` (plain, strata_qc, cachalot,
cacheops). The parent sets ``DATABASE_URL``, ``CACHE_URL`` and ``PYTHONPATH`` (demo and
benchmarks) and seeds the database; this process drives the demo's pages in-process with
``django.test.Client`` (no network) and writes what it measured as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def setup(variant: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = f"peer_settings.{variant}"
    # The plain, cachalot and cacheops variants must not have Strata's hooks installed.
    os.environ["STRATA_QUERY_CACHE"] = "1" if variant == "strata_qc" else "0"
    import django

    django.setup()


def pick_urls() -> tuple[list[str], int, int]:
    """Home, 20 article, 10 tag and 10 author pages, chosen by primary key.

    Raw SQL, so that no query cache sees (or caches) the choice. Also returns the article
    written to (the first article page's) and the user who writes.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT id, slug FROM newsroom_article ORDER BY id")
        articles = cursor.fetchall()
        cursor.execute("SELECT slug FROM newsroom_tag ORDER BY id LIMIT 10")
        tags = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT slug FROM newsroom_author ORDER BY id LIMIT 10")
        authors = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT min(id) FROM auth_user")
        user_id = cursor.fetchone()[0]
    step = max(1, len(articles) // 20)
    chosen = articles[::step][:20]
    urls = ["/"]
    urls += [f"/articles/{slug}/" for _, slug in chosen]
    urls += [f"/tags/{slug}/" for slug in tags]
    urls += [f"/authors/{slug}/" for slug in authors]
    return urls, chosen[0][0], user_id


def kind(url: str) -> str:
    return "home" if url == "/" else url.split("/")[1]


class Driver:
    """Requests the pages through ``django.test.Client``; any non-200 is an error."""

    def __init__(self, urls: list[str]):
        from django.test import Client

        self.client = Client()
        self.urls = urls

    def get(self, url: str):
        response = self.client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
        return response

    def round(self) -> None:
        for url in self.urls:
            self.get(url)

    def queries_per_url(self) -> dict[str, int]:
        """One round, counting the queries each page sent to the database.

        Counted by an execute wrapper, not ``CaptureQueriesContext``: while Django
        captures queries, Strata answers no read from the cache (a project's
        ``assertNumQueries`` then counts what it counted without Strata).
        """
        from django.db import connection

        sent = []

        def count(execute, sql, params, many, context):
            sent.append(sql)
            return execute(sql, params, many, context)

        counts = {}
        with connection.execute_wrapper(count):
            for url in self.urls:
                before = len(sent)
                self.get(url)
                counts[url] = len(sent) - before
        return counts


def clear_function(variant: str):
    """What empties this variant's cache: query results and their bookkeeping."""
    if variant == "cacheops":
        from cacheops import invalidate_all

        return invalidate_all
    if variant == "plain":
        return lambda: None
    from django.core.cache import caches

    return caches["default"].clear  # Strata's and cachalot's entries live there


def drop_results_function(variant: str):
    """What throws away the cached results but keeps the bookkeeping of what is current.

    That is the miss a page meets once a write (or expiry) made its results stale:
    Strata keeps its tag versions, cachalot its table versions. cacheops keeps no
    versions: its results and their conj sets go together, as in a cold miss.
    """
    if variant == "strata_qc":
        import redis

        from strata.querycache.reads import RESULT_PREFIX

        client = redis.Redis.from_url(os.environ["CACHE_URL"])

        def drop() -> None:
            keys = list(client.scan_iter(match=f"*{RESULT_PREFIX}*", count=1000))
            if keys:
                client.delete(*keys)

        return drop
    if variant == "cachalot":
        from cachalot.api import invalidate

        return invalidate
    return clear_function(variant)


def timed_round(driver: Driver, per_kind: dict[str, list[float]], before=None) -> float:
    """One round of the pages, ``before()`` untimed ahead of each; returns the time spent.

    Each request's time is also added to its kind of page in ``per_kind``.
    """
    spent = 0.0
    for url in driver.urls:
        if before is not None:
            before()
        started = time.perf_counter()
        driver.get(url)
        took = time.perf_counter() - started
        spent += took
        per_kind.setdefault(kind(url), []).append(took)
    return spent


def measure_rounds(driver: Driver, seconds: float, before=None, max_rounds: int = 2000) -> dict:
    """Rounds of the pages until ``seconds`` of wall-clock time have passed (at least one).

    The rate counts request time only; each round's own rate shows how steady it was.
    """
    driver.round()  # fills the cache (or what ``before`` keeps of it)
    per_kind: dict[str, list[float]] = {}
    round_times = []
    wall = time.perf_counter()
    while len(round_times) < max_rounds and (
        not round_times or time.perf_counter() - wall < seconds
    ):
        round_times.append(timed_round(driver, per_kind, before))
    spent = sum(round_times)
    requests = len(round_times) * len(driver.urls)
    round_rps = sorted(len(driver.urls) / t for t in round_times)
    return {
        "rounds": len(round_times),
        "requests": requests,
        "seconds": round(spent, 3),
        "rps": round(requests / spent, 1),
        "round_rps_min_median_max": [
            round(round_rps[0], 1),
            round(round_rps[len(round_rps) // 2], 1),
            round(round_rps[-1], 1),
        ],
        "mean_ms_by_page": {k: round(1000 * sum(v) / len(v), 3) for k, v in per_kind.items()},
    }


def measure_writes(
    driver: Driver, article_id: int, user_id: int, seconds: float, max_pairs: int = 1000
) -> dict:
    """Insert one comment, edit it (``save()``: an UPDATE), delete it, again and again;
    each statement timed alone, in autocommit.

    The cache is warm when the writes begin (what a write has to invalidate is there).
    """
    from newsroom.models import Comment

    driver.round()
    timed: dict[str, list[float]] = {"insert": [], "update": [], "delete": []}
    wall = time.perf_counter()
    for index in range(max_pairs):
        started = time.perf_counter()
        comment = Comment.objects.create(
            article_id=article_id, user_id=user_id, body=f"benchmark write {index}"
        )
        inserted = time.perf_counter()
        comment.body = f"benchmark edit {index}"
        comment.save()
        updated = time.perf_counter()
        comment.delete()
        ended = time.perf_counter()
        timed["insert"].append(inserted - started)
        timed["update"].append(updated - inserted)
        timed["delete"].append(ended - updated)
        if ended - wall >= seconds:
            break
    result: dict = {"pairs": len(timed["insert"])}
    for kind, values in timed.items():
        values.sort()
        result[f"{kind}_us_mean"] = round(1e6 * sum(values) / len(values), 1)
        result[f"{kind}_us_p50"] = round(1e6 * values[len(values) // 2], 1)
    return result


def measure_invalidation(driver: Driver, article_id: int, user_id: int, article_url: str) -> dict:
    """Queries that reach the database in the round after one comment insert (and delete).

    With every page cached a round sends (nearly) no query; each query it sends after the
    write is a cached result that the write threw away and a page read again.
    """
    from newsroom.models import Comment

    driver.round()
    driver.round()
    baseline = driver.queries_per_url()
    marker = "querycache-peers one write"
    comment = Comment.objects.create(article_id=article_id, user_id=user_id, body=marker)
    after_insert = driver.queries_per_url()
    # The page must show the new comment at once: a cache that served it stale fails here.
    fresh_after_insert = marker in driver.get(article_url).content.decode()
    driver.round()
    settled = driver.queries_per_url()
    comment.delete()
    after_delete = driver.queries_per_url()
    fresh_after_delete = marker not in driver.get(article_url).content.decode()

    def extra(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
        return {url: after[url] - before[url] for url in driver.urls if after[url] != before[url]}

    inserted = extra(after_insert, baseline)
    deleted = extra(after_delete, settled)
    return {
        "baseline_queries_per_round": sum(baseline.values()),
        "baseline_uncached_pages": {u: n for u, n in baseline.items() if n},
        "insert_rerun_queries": sum(inserted.values()),
        "insert_rerun_pages": inserted,
        "delete_rerun_queries": sum(deleted.values()),
        "delete_rerun_pages": deleted,
        "fresh_after_insert": fresh_after_insert,
        "fresh_after_delete": fresh_after_delete,
    }


def strata_counters() -> dict[str, int]:
    from strata.querycache.stats import stats

    return dict(stats)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    setup(args.variant)
    from django.conf import settings

    from strata.querycache.monkey_patch import is_installed
    from strata.querycache.stats import reset_stats

    urls, article_id, user_id = pick_urls()
    driver = Driver(urls)
    clear = clear_function(args.variant)
    drop_results = drop_results_function(args.variant)
    clear()
    result: dict = {
        "variant": args.variant,
        "installed_apps": [a for a in settings.INSTALLED_APPS if a in ("cachalot", "cacheops")],
        "strata_query_cache_installed": is_installed(),
        "urls": urls,
    }
    phases = [
        # warm: every result cached; cold: the cache emptied before each request;
        # miss: results thrown away before each request, bookkeeping kept.
        ("warm", lambda: measure_rounds(driver, args.seconds)),
        ("cold", lambda: measure_rounds(driver, args.seconds, before=clear)),
        ("miss", lambda: measure_rounds(driver, args.seconds, before=drop_results)),
        ("write", lambda: measure_writes(driver, article_id, user_id, min(args.seconds, 3))),
        ("invalidation", lambda: measure_invalidation(driver, article_id, user_id, urls[1])),
    ]
    for name, phase in phases:
        reset_stats()
        result[name] = phase()
        if is_installed():
            result[name]["strata_stats"] = strata_counters()
        print(f"  {args.variant}: {name} done", file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
