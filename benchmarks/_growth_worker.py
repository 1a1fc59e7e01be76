"""One Django process of ``benchmarks/cost_growth.py``: the demo's settings, one way.

Started by the parent as ``python -c "import _growth_worker; _growth_worker.main()"`` with
the demo's environment (``DATABASE_URL``, ``CACHE_URL``) and ``GROWTH_PAGE_CACHE``,
``GROWTH_NEAR_CACHE``, ``GROWTH_PLAIN`` (``1``/``0``) saying which Strata layers are on.
It answers one JSON command a line on stdin with one JSON line on stdout.

Requests go through the project's WSGI application as an app server calls it:
``PageCacheApplication`` around Django's handler, no server and no network in between.
Besides the demo's pages, this module is the URLconf of a page that depends on N tags:
``/growth/<n>/`` reads N articles by primary key (at most 100 a query, the most one
``IN`` list is tagged row by row), so it records N row tags and a few table-level ones.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from _common import wsgi_environ

HERE = Path(__file__).resolve().parent
IN_CHUNK = 100  # strata.querycache.analysis.MAX_IN_VALUES


def _flag(name: str, default: str = "1") -> bool:
    return os.environ.get(name, default) != "0"


def configure() -> None:
    """The demo's settings, with this module as the URLconf and the layers chosen."""
    import django
    from django.conf import settings

    sys.path[:0] = [str(HERE.parent / "demo"), str(HERE.parent)]
    import newsroom_site.settings as demo

    values = {name: getattr(demo, name) for name in dir(demo) if name.isupper()}
    plain = _flag("GROWTH_PLAIN", "0")
    values["ROOT_URLCONF"] = "_growth_worker"
    values["STRATA"] = {
        **values["STRATA"],
        "QUERY_CACHE": {"ENABLED": not plain},
        "FRAGMENT_CACHE": {"ENABLED": not plain},
        "PAGE_CACHE": {"ENABLED": not plain and _flag("GROWTH_PAGE_CACHE")},
        "NEAR_CACHE": {"ENABLED": _flag("GROWTH_NEAR_CACHE")},
        "TIMING": {"ENABLED": False},
    }
    values["LOGGING"] = {"version": 1, "disable_existing_loggers": False}
    settings.configure(**values)
    django.setup()


def growth_page(request, n: int):
    """A page that depends on ``n`` articles, read by primary key, 100 at a time."""
    from django.http import HttpResponse

    from newsroom.models import Article

    ids = list(range(1, n + 1))
    seen: list[int] = []
    for start in range(0, n, IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        seen += Article.objects.filter(pk__in=chunk).order_by("pk").values_list("pk", flat=True)
    return HttpResponse(f"{n} articles: {seen}\n".encode(), content_type="text/plain")


def _urlpatterns():
    from django.urls import include, path

    return [path("growth/<int:n>/", growth_page), path("", include("newsroom_site.urls"))]


def __getattr__(name: str):
    # Django reads ``urlpatterns`` after setup; the demo's URLs need the apps loaded.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


class Client:
    """Calls the WSGI application the way an app server's worker does."""

    def __init__(self) -> None:
        from django.core.wsgi import get_wsgi_application

        from strata.pages.wsgi import PageCacheApplication

        self.application = PageCacheApplication(get_wsgi_application())

    def get(self, path: str) -> tuple[str, dict, int]:
        seen: dict = {}

        def start_response(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, dict(headers)

        result = self.application(wsgi_environ(path, HTTP_USER_AGENT="cost-growth"), start_response)
        try:
            size = sum(len(chunk) for chunk in result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        return seen["status"], seen["headers"], size


class Queries:
    """Counts the statements sent to the database (without capturing: a capture turns
    Strata's query cache off for the test that captures)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def _redis():
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])


def _near_figures() -> dict | None:
    from strata.tags.stores import version_store

    near = getattr(version_store("default"), "near", None)
    return None if near is None else near.figures()


def timed(
    client: Client, path: str, seconds: float, most: int, flush: bool = False, block: int = 10
) -> dict:
    """Requests of ``path`` in blocks of ``block`` for about ``seconds`` (at most ``most``).

    The figure is the median of the blocks' means in microseconds per request, with the
    evidence of what answered: the ``X-Strata`` words, the statements sent to the
    database, the query cache's counters and the near cache's. ``flush``: Redis emptied
    before each request (every cache cold); then a block is one request and the flush is
    not timed.
    """
    from django.db import connection

    from strata.querycache.stats import stats
    from strata.tags.stores import version_store

    if flush:
        block = 1
        client_redis = _redis()
    words: Counter[str] = Counter()
    queries = Queries()
    stats_before = Counter(stats)
    near_before = _near_figures()
    means: list[float] = []
    sizes: set[int] = set()
    count, deadline = 0, time.monotonic() + seconds
    with connection.execute_wrapper(queries):
        while count < most and (len(means) < 3 or time.monotonic() < deadline):
            if flush:
                client_redis.flushdb()
                version_store("default").sync()  # this process's near cache heard it
            started = time.perf_counter()
            for _ in range(block):
                _, headers, size = client.get(path)
                words[headers.get("X-Strata", "-")] += 1
                sizes.add(size)
            means.append(1e6 * (time.perf_counter() - started) / block)
            count += block
    means.sort()
    near_after = _near_figures()
    result = {
        "path": path,
        "requests": count,
        "us": round(means[len(means) // 2], 1),
        "us_p10": round(means[len(means) // 10], 1),
        "us_p90": round(means[(len(means) * 9) // 10], 1),
        "x_strata": dict(words),
        "body_bytes": sorted(sizes),
        "queries_per_request": round(queries.count / count, 2),
        "query_cache": {
            k: v - stats_before.get(k, 0) for k, v in stats.items() if v != stats_before.get(k, 0)
        },
    }
    if near_before is not None and near_after is not None:
        result["near_cache"] = {
            k: near_after[k] - near_before[k] for k in ("hits", "misses", "fills", "invalidated")
        }
    return result


def page_tags(client: Client, path: str) -> dict:
    """The tags the page records when rendered (read by a recorder around the request)."""
    from strata.tags.recorder import recording

    with recording() as recorder:
        _, headers, _ = client.get(path)
    tags = recorder.tags
    return {
        "tags": len(tags),
        "row_tags": sum(1 for tag in tags if "=" in tag),
        "x_strata": headers.get("X-Strata", "-"),
        "xkey_tags": len(headers.get("xkey", "").split()),
    }


def memory(client: Client, path: str) -> dict:
    """Redis emptied, ``path`` requested three times (stored, then two hits); then Redis's
    bytes per key of each of Strata's kinds (``MEMORY USAGE``), and the near cache's
    entries and bytes (its own charge: each value's bytes and 160 for the entry)."""
    from strata.fragments.cache import FRAGMENT_PREFIX
    from strata.pages.keys import PAGE_PREFIX
    from strata.querycache.reads import RESULT_PREFIX
    from strata.tags.stores import version_store
    from strata.tags.versions import VERSION_PREFIX

    redis_client = _redis()
    redis_client.flushdb()
    version_store("default").sync()
    words = [client.get(path)[1].get("X-Strata", "-") for _ in range(3)]
    client = redis_client
    kinds = {
        "page": PAGE_PREFIX,
        "version": VERSION_PREFIX,
        "query result": RESULT_PREFIX,
        "fragment": FRAGMENT_PREFIX,
    }
    redis_kinds: dict = {}
    for kind, prefix in kinds.items():
        sizes = [
            client.memory_usage(key, samples=0) or 0
            for key in client.scan_iter(match=f"*{prefix}*", count=1000)
        ]
        redis_kinds[kind] = {
            "keys": len(sizes),
            "bytes_mean": round(sum(sizes) / len(sizes)) if sizes else None,
            "bytes_max": max(sizes) if sizes else None,
            "bytes_total": sum(sizes),
        }
    info = client.info("memory")
    result = {
        "x_strata": words,
        "redis": redis_kinds,
        "redis_used_memory": info["used_memory"],
        "redis_keys": client.dbsize(),
    }
    near = getattr(version_store("default"), "near", None)
    if near is not None:
        near_kinds: dict = {}
        with near._lock:
            entries = list(near._entries.items())
        for key, (_, _, size) in entries:
            kind = next(
                (k for k, p in kinds.items() if p in key),
                "checked page" if key.startswith("\x00") else "other",
            )
            row = near_kinds.setdefault(kind, {"entries": 0, "bytes": 0})
            row["entries"] += 1
            row["bytes"] += size
        for row in near_kinds.values():
            row["bytes_mean"] = round(row["bytes"] / row["entries"])
        result["near_cache"] = {"figures": near.figures(), "kinds": near_kinds}
    return result


def write_cycle(n: int, article_id: int, user_id: int) -> dict:
    """Insert ``n`` comments, update them, delete them: each in a transaction of its own,
    timed to the commit's return (Strata's versions changed by then). The table ends as
    it began. Returns microseconds and the tags each write invalidated."""
    from django.db import transaction

    from newsroom.models import Comment
    from strata.signals import post_invalidation

    bumped: list[frozenset] = []

    def heard(sender, tags, **kwargs):
        bumped.append(tags)

    post_invalidation.connect(heard, dispatch_uid="cost-growth-heard")
    result: dict = {}
    try:
        rows = [
            Comment(article_id=article_id, user_id=user_id, body="cost growth") for _ in range(n)
        ]
        steps = [
            ("insert", lambda: Comment.objects.bulk_create(rows)),
            (
                "update",
                lambda: Comment.objects.filter(id__gte=first, id__lte=last).update(body="edited"),
            ),
            ("delete", lambda: Comment.objects.filter(id__gte=first, id__lte=last).delete()),
        ]
        first = last = 0
        for step, write in steps:
            bumped.clear()
            started = time.perf_counter()
            with transaction.atomic():
                written = write()
            elapsed = time.perf_counter() - started
            if step == "insert":
                first, last = written[0].pk, written[-1].pk
                assert last - first + 1 == n, "the new rows' keys are not contiguous"
            tags = frozenset().union(*bumped)
            result[step] = {
                "us": round(1e6 * elapsed, 1),
                "tags": len(tags),
                "row_tags": sum(1 for tag in tags if "=" in tag),
                "table_tag": "newsroom_comment" in tags,
                "invalidations": len(bumped),
            }
    finally:
        post_invalidation.disconnect(dispatch_uid="cost-growth-heard")
    return result


def seed(articles: int, comments: int, fast_hasher: bool = False) -> dict:
    """Migrate, then ``seed_newsroom`` (in the plain worker: no Strata hook on the way).
    ``fast_hasher``: the readers' password hashed with MD5 (the smoke run's seconds)."""
    import io

    from django.core.management import call_command
    from django.test.utils import override_settings

    hashers = ["django.contrib.auth.hashers.MD5PasswordHasher"] if fast_hasher else None
    out = io.StringIO()
    started = time.perf_counter()
    with override_settings(**({"PASSWORD_HASHERS": hashers} if hashers else {})):
        call_command("migrate", interactive=False, verbosity=0, stdout=out)
        migrated = time.perf_counter()
        call_command("seed_newsroom", articles=articles, comments=comments, stdout=out)
    return {
        "migrate_seconds": round(migrated - started, 1),
        "seed_seconds": round(time.perf_counter() - migrated, 1),
        "output": out.getvalue().strip().splitlines()[-1:],
    }


def describe() -> dict:
    from django.db import connection

    from newsroom.models import Article, Comment
    from strata.conf import strata_settings
    from strata.querycache.monkey_patch import is_installed

    conf = strata_settings()
    newest = Article.objects.order_by("-published_at", "-id").first()
    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(id) FROM auth_user WHERE username LIKE 'reader%%'")
        (user_id,) = cursor.fetchone()
    return {
        "articles": Article.objects.count(),
        "comments": Comment.objects.count(),
        "article_path": newest.get_absolute_url() if newest else None,
        "article_id": newest.pk if newest else None,
        "user_id": user_id,
        "page_cache": conf.page_cache.enabled,
        "query_cache": conf.query_cache.enabled,
        "near_cache": conf.near_cache.enabled,
        "write_row_limit": conf.write_row_limit,
        "strata_hooks": is_installed(),
    }


def main() -> None:
    configure()
    client = Client()
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            break
        if op == "describe":
            answer = describe()
        elif op == "timed":
            answer = timed(client, **command)
        elif op == "tags":
            answer = page_tags(client, **command)
        elif op == "memory":
            answer = memory(client, **command)
        elif op == "seed":
            answer = seed(**command)
        elif op == "writes":
            answer = write_cycle(**command)
        else:
            answer = {"error": f"unknown op {op}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
