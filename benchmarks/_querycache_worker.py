"""One variant of ``querycache_peers.py``, in a process of its own, driven by the parent.

    python benchmarks/_querycache_worker.py VARIANT   (commands on stdin, answers on stdout)

VARIANT names a module of ``benchmarks/peer_settings`` (plain, strata_qc, cachalot,
cacheops). The parent sets ``DATABASE_URL``, ``CACHE_URL`` (a Redis database of this
variant's own) and ``PYTHONPATH`` (demo and benchmarks) and seeds the database; this
process calls the demo's WSGI application in-process (no network) when the parent says
so: the parent takes turns between the variants, a few requests each, so that they all
meet the same load on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager


def setup(variant: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = f"peer_settings.{variant}"
    # The plain, cachalot and cacheops variants must not have Strata's hooks installed;
    # no variant runs the page or fragment cache (the peer settings say so too).
    os.environ["STRATA_QUERY_CACHE"] = "1" if variant.startswith("strata") else "0"
    os.environ["STRATA_PAGE_CACHE"] = "0"
    os.environ["STRATA_FRAGMENT_CACHE"] = "1" if variant == "strata_fragments" else "0"
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


PAGE_CACHE_WORDS = ("page-hit", "page-stale", "page-miss")
"""``X-Strata`` words that say the page cache answered or stored the page."""


class Driver:
    """Requests pages from the project's WSGI application as an app server would.

    ``newsroom_site.wsgi.application`` (the page cache's WSGI layer included), called in
    this process with no network: the body is read, then ``close()`` is called, which
    sends ``request_finished`` (Strata stores a request's misses there, after the
    response). Each request is timed twice: until the body was read (what the client
    waits for) and until ``close()`` returned (what the process spent: throughput).
    Any status but 200, or an ``X-Strata`` word of the page cache, is an error.
    """

    def __init__(self, urls: list[str]):
        from newsroom_site.wsgi import application

        self.application = application
        self.urls = urls
        self.words: set[str] = set()
        """Every ``X-Strata`` value seen (``"-"`` for none)."""

    def request(self, url: str) -> tuple[bytes, dict[str, str], float, float]:
        """``(body, headers, seconds to the response, seconds until close() returned)``."""
        from _common import wsgi_environ

        environ = wsgi_environ(url)
        answer: list = []

        def start_response(status, headers, exc_info=None):
            answer[:] = [status, headers]

        started = time.perf_counter()
        result = self.application(environ, start_response)
        try:
            body = b"".join(result)
            responded = time.perf_counter()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        done = time.perf_counter()
        status, headers = answer
        headers = {k.lower(): v for k, v in headers}
        word = headers.get("x-strata", "-")
        self.words.add(word)
        if not status.startswith("200 "):
            raise RuntimeError(f"GET {url} answered {status}")
        if word in PAGE_CACHE_WORDS:
            raise RuntimeError(f"GET {url}: X-Strata: {word}: the page cache is on")
        return body, headers, responded - started, done - started

    def get(self, url: str) -> bytes:
        return self.request(url)[0]

    def round(self) -> None:
        for url in self.urls:
            self.get(url)

    def queries_per_url(self) -> dict[str, int]:
        """One round, counting the queries each page sent to the database.

        Counted by an execute wrapper, not ``CaptureQueriesContext``: while Django
        captures queries, Strata answers no read from the cache (a project's
        ``assertNumQueries`` then counts what it counted without Strata).
        """
        counts = {}
        with count_queries() as sent:
            for url in self.urls:
                before = len(sent)
                self.get(url)
                counts[url] = len(sent) - before
        return counts


@contextmanager
def count_queries():
    """The statements sent to the database inside the block (a list, filled as they go)."""
    from django.db import connection

    sent: list[str] = []

    def count(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        yield sent


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
    if variant.startswith("strata"):
        from django.apps import apps

        from strata.api import invalidate_model

        models = [model for model in apps.get_models() if model._meta.app_label == "newsroom"]

        def drop() -> None:
            # What a write does: new versions; the stale results stay where they were.
            for model in models:
                invalidate_model(model)

        return drop
    if variant == "cachalot":
        from cachalot.api import invalidate

        return invalidate
    return clear_function(variant)


def burst(driver: Driver, url: str, n: int, before=None) -> dict:
    """``n`` requests of ``url``, ``before()`` untimed ahead of each: mean milliseconds
    to the response and until ``close()`` returned."""
    to_response = busy = 0.0
    for _ in range(n):
        if before is not None:
            before()
        _, _, responded, done = driver.request(url)
        to_response += responded
        busy += done
    return {"n": n, "response_ms": 1000 * to_response / n, "busy_ms": 1000 * busy / n}


# Commands no variant's request sends: the near caches' push connections ping Redis from
# a thread of every Strata worker, whoever's turn it is; and this script's own INFO.
_BACKGROUND = ("cmdstat_ping", "cmdstat_info", "cmdstat_client", "cmdstat_subscribe")


def redis_counters(client) -> dict[str, int]:
    """The Redis server's commands processed (but pings and INFO) and key hits and misses."""
    info = client.info("stats")
    calls = client.info("commandstats")
    return {
        "commands": sum(
            entry["calls"] for name, entry in calls.items() if not name.startswith(_BACKGROUND)
        ),
        "keyspace_hits": info["keyspace_hits"],
        "keyspace_misses": info["keyspace_misses"],
    }


def evidence(driver: Driver, url: str, before, redis_client) -> dict:
    """One request of ``url`` (after ``before()``), with what proves what it measured:
    statements sent to the database, Strata's query cache counters, the Redis server's
    commands and key hits (only this process is running a request meanwhile), and the
    ``X-Strata`` header."""
    from strata.querycache.stats import reset_stats, stats

    if before is not None:
        before()
    reset_stats()
    redis_before = redis_counters(redis_client)
    with count_queries() as sent:
        _, headers, _, _ = driver.request(url)
    redis_after = redis_counters(redis_client)
    redis_delta = {k: redis_after[k] - redis_before[k] for k in redis_after}
    return {
        "queries": len(sent),
        "strata_stats": dict(stats),
        "redis": redis_delta,
        "x_strata": headers.get("x-strata"),
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
    fresh_after_insert = marker in driver.get(article_url).decode()
    driver.round()
    settled = driver.queries_per_url()
    comment.delete()
    after_delete = driver.queries_per_url()
    fresh_after_delete = marker not in driver.get(article_url).decode()

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


def serve(variant: str) -> None:
    """Answer the parent's commands, one JSON object a line on stdin, one a line on stdout."""
    import redis
    from django.conf import settings

    from strata.querycache.monkey_patch import is_installed

    urls, article_id, user_id = pick_urls()
    driver = Driver(urls)
    clear = clear_function(variant)
    drop_results = drop_results_function(variant)
    before = {"warm": None, "cold": clear, "miss": drop_results}
    redis_client = redis.Redis.from_url(os.environ["CACHE_URL"])
    clear()
    out = sys.stdout
    sys.stdout = sys.stderr  # anything the site prints must not reach the parent's pipe
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "describe":
            answer = {
                "variant": variant,
                "installed_apps": [
                    a for a in settings.INSTALLED_APPS if a in ("cachalot", "cacheops")
                ],
                "strata_query_cache_installed": is_installed(),
                "strata_page_cache": settings.STRATA.get("PAGE_CACHE"),
                "strata_fragment_cache": settings.STRATA.get("FRAGMENT_CACHE"),
                "urls": urls,
            }
        elif op == "burst":
            phase, url = command["phase"], command["url"]
            if phase == "warm":
                driver.get(url)  # fills what another phase emptied
            answer = burst(driver, url, command["n"], before[phase])
        elif op == "evidence":
            phase, url = command["phase"], command["url"]
            driver.get(url)
            answer = evidence(driver, url, before[phase], redis_client)
        elif op == "writes":
            answer = measure_writes(driver, article_id, user_id, command["seconds"])
        elif op == "invalidation":
            answer = measure_invalidation(driver, article_id, user_id, urls[1])
        elif op == "words":
            answer = sorted(driver.words)
        elif op == "quit":
            break
        else:
            raise SystemExit(f"unknown command {op!r}")
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant")
    args = parser.parse_args()
    setup(args.variant)
    serve(args.variant)


if __name__ == "__main__":
    main()
