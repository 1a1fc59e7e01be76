"""Where the time of one page-cache hit goes, in a process of its own (no server, no network
between client and Django; the cache is the stack's Redis).

    python benchmarks/_page_hit_profile.py --path / --requests 2000 --out result.json

The parent (``page_cache_peers.py``) runs it with an app server's environment and settings
module, once the page is cached. It calls the project's WSGI application directly, the way
an app server's worker does, times ``--requests`` calls, then profiles as many more with
cProfile and sums the time by where it was spent.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path

from _common import wsgi_environ

# (category, markers in a function's file name or, for built-ins, in its name); first match.
CATEGORIES = [
    ("cache round trips (redis-py, socket I/O)", ("/redis/", "socket", "recv", "sendall")),
    ("unpickling", ("_pickle", "pickle")),
    ("Django cache API", ("django/core/cache",)),
    ("Strata", ("/strata/",)),
    ("Django middleware", ("django/middleware", "django/contrib", "whitenoise")),
    (
        "Django request handling (handler, request, response, signals)",
        ("django/core/handlers", "django/http", "django/dispatch", "django/core/signals"),
    ),
    ("Django utils, db, urls", ("django/",)),
]


def call(application, path: str, host: str) -> tuple[str, dict, int]:
    """One request through the WSGI application: status, headers, body size."""
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    result = application(
        wsgi_environ(path, host, HTTP_USER_AGENT="page-cache-peers"), start_response
    )
    try:
        size = sum(len(chunk) for chunk in result)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return seen["status"], seen["headers"], size


def category(filename: str, name: str) -> str:
    where = filename if filename != "~" else name
    for label, markers in CATEGORIES:
        if any(marker in where for marker in markers):
            return label
    return "other (Python, stdlib)"


def _redis_client_init() -> tuple[str, int, str]:
    """cProfile's key for ``redis.Redis.__init__``."""
    import inspect

    import redis

    code = inspect.unwrap(redis.Redis.__init__).__code__  # under redis-py's decorators
    return (code.co_filename, code.co_firstlineno, code.co_name)


def profile(application, path: str, host: str, requests: int) -> dict:
    """Profile ``requests`` calls; time by category and the functions that cost most."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        call(application, path, host)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(entry[2] for entry in stats.values())  # tottime of every function
    by_category: dict[str, float] = {}
    for (filename, _, name), entry in stats.items():
        label = category(filename, name)
        by_category[label] = by_category.get(label, 0.0) + entry[2]
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:10]
    redis_calls = sum(
        entry[1]
        for (filename, _, name), entry in stats.items()
        if "/redis/" in filename and name == "execute_command"
    )
    clients = stats.get(_redis_client_init(), (0, 0))[1]
    return {
        "profiled_us_per_request": round(1e6 * total / requests, 1),
        "share_by_category": {
            label: round(seconds / total, 3)
            for label, seconds in sorted(by_category.items(), key=lambda item: -item[1])
        },
        "redis_commands_per_request": round(redis_calls / requests, 2),
        # Django's RedisCache builds a redis.Redis client for every cache call.
        "redis_clients_per_request": round(clients / requests, 2),
        "top_functions": [
            {
                "function": f"{Path(filename).name}:{line} {name}",
                "us_per_request": round(1e6 * entry[2] / requests, 1),
                "calls_per_request": round(entry[1] / requests, 1),
            }
            for (filename, line, name), entry in top
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", default="/")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    for _ in range(50):  # warm: imports, connections, Strata's memo of the page's tags
        status, headers, size = call(application, args.path, args.host)
    started = time.perf_counter()
    for _ in range(args.requests):
        call(application, args.path, args.host)
    plain = time.perf_counter() - started
    result = {
        "path": args.path,
        "status": status,
        "x_strata": headers.get("X-Strata"),
        "expires": headers.get("Expires"),
        "body_bytes": size,
        "us_per_request": round(1e6 * plain / args.requests, 1),
        **profile(application, args.path, args.host, args.requests),
    }
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
