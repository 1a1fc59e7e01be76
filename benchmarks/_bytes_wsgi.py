"""A bare WSGI app that answers stored pages from memory: the floor under any page cache.

``benchmarks/page_cache_peers.py`` runs it under the same Gunicorn configuration as the
demo's app servers. ``STRATA_BENCH_PAGES`` names a JSON file mapping each path to the
status, headers and body (latin-1 text) of a page as Strata's page cache served it; any
other path answers ``ok`` (the app server's health probe).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable

_OK = ("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")], b"ok\n")


def _load(path: str) -> dict[str, tuple[str, list[tuple[str, str]], bytes]]:
    pages = {}
    with open(path, encoding="utf-8") as source:
        for url, page in json.load(source).items():
            body = page["body"].encode("latin-1")
            headers = [(name, value) for name, value in page["headers"]]
            headers.append(("Content-Length", str(len(body))))
            pages[url] = (page["status"], headers, body)
    return pages


PAGES = _load(os.environ["STRATA_BENCH_PAGES"]) if os.environ.get("STRATA_BENCH_PAGES") else {}


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """Answer the stored page for the request's path, or ``ok``."""
    status, headers, body = PAGES.get(environ.get("PATH_INFO", ""), _OK)
    start_response(status, headers)
    return [body]
