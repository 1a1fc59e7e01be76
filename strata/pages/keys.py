"""Page cache keys: pure functions of a request.

A key is built only from what identifies the resource for everyone: the scheme, the host
that Django validated against ``ALLOWED_HOSTS``, the path, the query string normalised
(sorted, tracking parameters dropped, bounded), whether the request carries cookies at all
(a page for nobody in particular has no holes) and, when Django compresses responses, the
encoding the client accepts —
never from an unvalidated header, so that no client can plant a page under a key that
others read.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.encoding import escape_uri_path

from ..tags.keyspace import PAGE_PREFIX

__all__ = [
    "PAGE_PREFIX",
    "NotCacheable",
    "normalized_query",
    "strip_ignored_parameters",
    "encoding_bucket",
    "page_key",
]

# Before every page key (strata.tags.keyspace, where every prefix is).


class NotCacheable(Exception):
    """The request cannot be keyed; the reason is the message."""


def _ignored(name: str, ignored: tuple[str, ...]) -> bool:
    for pattern in ignored:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


def normalized_query(query_string: str, ignored: tuple[str, ...], max_length: int) -> str:
    """The query string sorted, without tracking parameters; raise when it is too long.

    ``?b=2&utm_source=x&a=1`` and ``?a=1&b=2`` are the same page. Parameters keep their
    repeated values in order (``?tag=a&tag=b`` differs from ``?tag=b&tag=a``).
    """
    if len(query_string) > max_length:
        raise NotCacheable(f"query string longer than {max_length} characters")
    if not query_string:
        return ""
    pairs = [
        (name, value)
        for name, value in parse_qsl(query_string, keep_blank_values=True)
        if not _ignored(name, ignored)
    ]
    pairs.sort(key=lambda pair: pair[0])  # stable: repeated names keep their order
    return urlencode(pairs)


def strip_ignored_parameters(request: HttpRequest, ignored: tuple[str, ...]) -> bool:
    """Remove the parameters the key ignores from ``request`` before the view sees it.

    The key says the page does not depend on them, so the view must not either: a view
    (or Django's APPEND_SLASH redirect) that repeated ``?utm_source=<anything>`` would
    otherwise store it in the page every other visitor gets. Varnish setups strip them
    the same way. Returns True when something was removed.
    """
    query_string = request.META.get("QUERY_STRING", "")
    if not query_string:
        return False
    pairs = parse_qsl(query_string, keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if not _ignored(name, ignored)]
    if len(kept) == len(pairs):
        return False
    request.META["QUERY_STRING"] = urlencode(kept)
    request.__dict__.pop("GET", None)  # WSGIRequest parses GET lazily, once
    return True


def encoding_bucket(request: HttpRequest) -> str:
    """``gzip`` when the client accepts it, else ``identity``: all a key needs to know."""
    accept = request.META.get("HTTP_ACCEPT_ENCODING", "")
    return "gzip" if "gzip" in accept.lower() else "identity"


def page_key(
    request: HttpRequest,
    ignored: tuple[str, ...],
    max_query_string: int,
    vary_on_encoding: bool = True,
) -> str:
    """The cache key of ``request``'s page (GET and HEAD share it).

    ``vary_on_encoding``: pages are compressed per client (GZipMiddleware), so gzip and
    identity are separate pages.
    """
    try:
        host = request.get_host()  # validated against ALLOWED_HOSTS
    except DisallowedHost as exc:
        raise NotCacheable("host not allowed") from exc
    query = normalized_query(request.META.get("QUERY_STRING", ""), ignored, max_query_string)
    scheme = "https" if request.is_secure() else "http"
    text = "\n".join(
        (
            scheme,
            host.lower(),
            escape_uri_path(request.path),
            query,
            encoding_bucket(request) if vary_on_encoding else "",
            # Pages for requests without cookies have their personal parts filled in
            # for nobody in particular; the others carry holes.
            "anonymous" if not request.META.get("HTTP_COOKIE") else "with-cookies",
        )
    )
    return PAGE_PREFIX + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
