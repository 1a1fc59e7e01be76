"""``StrataPanel``: a django-debug-toolbar panel for what Strata did for the request.

For the request on screen it shows what answered it and why (``page-hit``,
``page-miss``, ``bypass: <reason>``), whether the accelerator may store the answer and
the tags it carries, every query with served-from-cache or not and its tags, the
``{% cached %}`` fragments, the personal holes, and the invalidations the request's
writes caused. Setup and middleware order: ``docs/debug-toolbar.md``::

    DEBUG_TOOLBAR_PANELS = [*debug_toolbar.settings.PANELS_DEFAULTS,
                            "strata.debug.panel.StrataPanel"]
    MIDDLEWARE = ["debug_toolbar.middleware.DebugToolbarMiddleware",
                  "strata.middleware.StrataMiddleware", ...]

A page with the toolbar in it is for the person debugging only: the panel marks every
response the toolbar handles ``private`` and drops its tags headers, so that neither the
accelerator nor (with the toolbar inside ``StrataMiddleware``) the page cache keeps it.
That is why the panel stays on even when unticked in the toolbar.
"""

from __future__ import annotations

import inspect
import re
from html import unescape
from typing import Any

from debug_toolbar.panels import Panel
from django.conf import settings
from django.core import checks, signing
from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, resolve

from ..conf import strata_settings
from ..edge.headers import TAG_HEADERS
from ..edge.policy import mark_uncacheable, view_name
from ..pages import holes
from . import trace
from .answer import SEEN_HEADERS, accelerator_verdict, what_answered

__all__ = ["StrataPanel", "toolbar_runs_first", "keep_out_of_shared_caches"]

TOOLBAR_MIDDLEWARE = "DebugToolbarMiddleware"
STRATA_MIDDLEWARE = "StrataMiddleware"


def _position(name: str) -> int | None:
    for index, path in enumerate(settings.MIDDLEWARE):
        if path.rsplit(".", 1)[-1] == name:
            return index
    return None


def toolbar_runs_first() -> bool:
    """True unless ``StrataMiddleware`` comes before the toolbar's middleware.

    The toolbar must wrap Strata: then it sees Strata's final answer, page-cache hits
    included, and what it adds to a page is added after the page cache stored it.
    """
    toolbar, strata = _position(TOOLBAR_MIDDLEWARE), _position(STRATA_MIDDLEWARE)
    return toolbar is None or strata is None or toolbar < strata


def keep_out_of_shared_caches(response: HttpResponseBase) -> None:
    """Mark a response the toolbar handles ``private``, without tags: no shared cache
    may keep it (the toolbar's markup and request id are for one person only)."""
    mark_uncacheable(response)
    for header in TAG_HEADERS:
        if header in response:
            del response[header]


_HOLE = re.compile(r'<strata-hole data-src="([^"]+)"')
_ESI_INCLUDE = re.compile(r'<esi:include src="([^"]+)"')


def holes_in(response: HttpResponseBase) -> list[dict[str, Any]]:
    """The personal holes in a page as Strata sends it: ``{"url", "esi"}`` each.

    Read from the markup, not from the render: a page or a ``{% cached %}`` block served
    from the cache carries its holes without any tag running again.
    """
    if getattr(response, "streaming", False) or "html" not in response.get("Content-Type", ""):
        return []
    content: bytes = getattr(response, "content", b"")
    text = content.decode(response.charset or "utf-8", "replace")
    included = {unescape(url) for url in _ESI_INCLUDE.findall(text)}
    urls = dict.fromkeys(unescape(url) for url in _HOLE.findall(text))
    return [{"url": url, "esi": url in included} for url in urls]


def _hole_template(url: str) -> str:
    """The template a hole's URL renders (its signed token decoded), or ``""``."""
    try:
        token = resolve(url).kwargs["token"]
        return str(holes._signer().unsign_object(token)["t"])
    except (Resolver404, KeyError, TypeError, signing.BadSignature):
        return ""


class StrataPanel(Panel):
    """The toolbar's Strata panel (``strata.debug.panel.StrataPanel``)."""

    title = "Strata"
    template = "strata/debug_panel.html"
    is_async = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._trace: trace.Trace | None = None
        self._seen: dict[str, str | None] = {}
        self._holes: list[dict[str, Any]] = []

    @property
    def enabled(self) -> bool:
        """On for every request the toolbar handles, even unticked: it guards the caches."""
        if self.from_store:
            return bool(self.get_stats())
        return True

    @property
    def nav_subtitle(self) -> str:
        """``page-miss · 3 queries, 2 from cache``: the sidebar's one line."""
        stats = self.get_stats()
        if not stats:
            return ""
        word = stats["answer"]["word"] or "no X-Strata"
        queries = stats["queries"]
        hits = sum(1 for query in queries if query["result"] == "hit")
        return f"{word} · {len(queries)} queries, {hits} from cache"

    def process_request(self, request: HttpRequest):
        """Trace the caches while the rest of the stack answers; keep the answer private."""
        recorded = trace.Trace()
        with trace.tracing(recorded):
            response = self.get_response(request)
        if inspect.isawaitable(response):  # the toolbar runs async (ASGI, async middleware)
            return self._answered_later(response, recorded)
        return self._answered(response, recorded)

    async def _answered_later(self, pending, recorded: trace.Trace) -> HttpResponseBase:
        # The trace is set in the awaiting task's context; Django runs sync middleware and
        # views in a thread with a copy of that context (asgiref): the same Trace.
        with trace.tracing(recorded):
            response = await pending
        return self._answered(response, recorded)

    def _answered(self, response: HttpResponseBase, recorded: trace.Trace) -> HttpResponseBase:
        self._trace = recorded
        self._seen = {header: response.get(header) for header in SEEN_HEADERS}
        self._holes = holes_in(response)
        keep_out_of_shared_caches(response)
        return response

    def generate_stats(self, request: HttpRequest, response: HttpResponseBase) -> None:
        """Turn the trace and the headers Strata set into the panel's (JSON-ready) stats."""
        recorded = self._trace or trace.Trace()
        conf = strata_settings()
        first = toolbar_runs_first()
        stats: dict[str, Any] = recorded.as_stats()
        holes = [{**hole, "template": _hole_template(hole["url"])} for hole in self._holes]
        stats.update(
            holes=holes,
            answer=what_answered(self._seen.get("X-Strata"), conf.page_cache.enabled, first),
            accelerator=accelerator_verdict(self._seen),
            headers=[[name, value] for name, value in self._seen.items() if value is not None],
            sent_cache_control=response.get("Cache-Control", ""),
            toolbar_first=first,
            view=view_name(request),
            status=response.status_code,
            counts={
                result: sum(1 for q in stats["queries"] if q["result"] == result)
                for result in ("hit", "miss", "bypass")
            },
        )
        self.record_stats(stats)

    @classmethod
    def run_checks(cls) -> list[checks.CheckMessage]:
        """``strata.W080``: the toolbar's middleware must come before ``StrataMiddleware``."""
        if toolbar_runs_first():
            return []
        return [
            checks.Warning(
                "DebugToolbarMiddleware comes after StrataMiddleware: page-cache hits never "
                "show the toolbar, and every page the toolbar shows bypasses Strata's caches.",
                hint="Put 'debug_toolbar.middleware.DebugToolbarMiddleware' before "
                "'strata.middleware.StrataMiddleware' in MIDDLEWARE (docs/debug-toolbar.md).",
                id="strata.W080",
            )
        ]
