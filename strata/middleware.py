"""``StrataMiddleware``: place it first in ``MIDDLEWARE``.

It answers the load balancer's health probe, and its readiness check of each accelerator
(:mod:`strata.edge.fence`), before any other middleware runs, serves
whole pages from the page cache when ``STRATA['PAGE_CACHE']`` is on (a hit returns before
any other middleware runs), records the tags of everything the view read, marks each
response shared or personal for the accelerator (``Cache-Control``, ``xkey``,
``X-Strata``), names the app server process that answered (``X-Strata-Server``),
holds a response that wrote until its first accelerator purge went out, and times the
request (``Server-Timing``, per-view figures, bench mode: :mod:`strata.timing`) and
counts it in the metrics (:mod:`strata.metrics`: view, ``X-Strata`` outcome, time, and
the sections of a render).

Page-cache hits answered by :class:`strata.pages.wsgi.PageCacheApplication` never reach
this middleware, and are not timed.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from time import perf_counter

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_cache_control

from .conf import strata_settings
from .edge import fence, tickets
from .edge.headers import set_tag_headers
from .edge.outcomes import Outcome, bypass
from .edge.policy import apply_edge_cache_control, mark_uncacheable
from .metrics import sources as _metrics_sources  # noqa: F401 - the caches' counters, flushed
from .metrics.registry import tally
from .pages.cache import PageCache, Rendered
from .pages.holes import has_holes
from .pages.wsgi import LOOKUP_KEY
from .querycache.control import caching_disabled
from .tags.recorder import recording
from .tags.stores import version_store
from .tags.versions import CacheUnavailable
from .timing import aggregates, collector
from .timing import monkey_patch as timing_hooks
from .timing.headers import add_bench_headers, add_server_timing, bench_mode, wants_server_timing
from .unavailable import database_unavailable, is_database_unavailable

__all__ = ["StrataMiddleware"]


class StrataMiddleware:
    """Health probe, page cache, tags and edge cache headers for every response."""

    def __init__(self, get_response):
        self.get_response = get_response
        conf = strata_settings()
        self.conf = conf
        self.health_path = conf.health_path
        self.edge_ttl = conf.edge_ttl
        self.status_ttls = conf.page_cache.status_timeouts
        self.tags_header_limit = conf.tags_header_limit
        self.tracks_reads = conf.tracks_reads
        self.pages = PageCache(conf) if conf.page_cache.enabled else None
        self.purges = bool(conf.accelerators)
        self.stale_while_revalidate = (
            conf.page_cache.stale_while_revalidate if conf.page_cache.enabled else 0
        )
        self._named_in = 0  # the pid the header names: see _server()
        self.server_header = ""
        self.timing_on = conf.timing.enabled
        self.server_timing = conf.timing.server_timing
        self.slow_queries = conf.timing.slow_queries
        self.bench_secret = conf.bench_secret.encode("utf-8", "surrogatepass")
        if self.timing_on:
            timing_hooks.install()  # done at start-up; this adds caches configured since
        self.metrics = tally if conf.metrics.enabled else None

    def _server(self) -> str:
        """``X-Strata-Server``, naming the process that answers. The middleware may have been
        built in a master that then forked the workers (Gunicorn's ``preload_app``; uWSGI,
        whose fork runs no Python at-fork handler), so the pid is checked, not inherited."""
        pid = os.getpid()
        if pid != self._named_in:
            self._named_in = pid
            self.server_header = f"{self.conf.server_name} pid={pid}"
        return self.server_header

    def __call__(self, request: HttpRequest):
        if request.path_info == self.health_path:
            response: HttpResponseBase = HttpResponse(b"ok\n", content_type="text/plain")
            response["Cache-Control"] = "no-store"
            response["X-Strata-Server"] = self._server()
            return response
        if request.path_info == fence.READY_PATH:
            # An accelerator's readiness check (it missed purges?): as cheap as the probe.
            return fence.readiness_response(request)
        metrics = self.metrics
        started = perf_counter() if metrics is not None else 0.0
        bench = bench_mode(request.META, self.bench_secret) if self.bench_secret else None
        if bench is None:
            if not self.timing_on:
                response, status = self.respond(request)
                if metrics is not None:
                    hit = status == Outcome.PAGE_HIT or status == Outcome.PAGE_STALE
                    view = aggregates.view_of(request, served_from_cache=hit)
                    metrics.request(view, status, perf_counter() - started)
                return response
            slow_queries = self.slow_queries
        else:
            if not timing_hooks.is_installed():
                timing_hooks.install()  # TIMING is off, but a bench run wants the sections
            slow_queries = max(self.slow_queries, 3)
        timing, token = collector.start(slow_queries)
        try:
            response, status = self.respond(request, bench)
        finally:
            collector.stop(token)
        if bench is not None:
            kind = f"bench-{bench}"
        elif status == Outcome.PAGE_HIT or status == Outcome.PAGE_STALE:
            kind = Outcome.PAGE_HIT.value  # a plain str: kinds are pickled with the figures
        else:
            kind = "rendered"
        view = aggregates.view_of(request, served_from_cache=kind == Outcome.PAGE_HIT)
        if bench is not None:
            add_bench_headers(response, timing, view)
            add_server_timing(response, timing)
        elif wants_server_timing(self.server_timing, response):
            add_server_timing(response, timing)
        if self.timing_on:
            aggregates.record(view, kind, timing, self.slow_queries)
        if metrics is not None:
            rendered = kind != Outcome.PAGE_HIT
            metrics.request(view, status, perf_counter() - started, timing if rendered else None)
        return response

    def respond(
        self, request: HttpRequest, bench: str | None = None
    ) -> tuple[HttpResponseBase, str | None]:
        """The response and its ``X-Strata`` word: from the page cache, or rendered.

        ``bench`` (``"warm"``/``"cold"``): render without the page cache; ``"cold"`` with
        every Strata cache off (see :mod:`strata.timing`, bench mode).
        """
        if self.purges:
            tickets.begin_request()
        status: str | None
        if bench is not None:
            request.META.pop(LOOKUP_KEY, None)  # the page cache is not used at all
            with caching_disabled() if bench == "cold" else nullcontext():
                rendered = self.render(request)
            response = rendered.response
            status = bypass(f"bench {bench}")
        elif self.pages is not None:
            looked_up = request.META.pop(LOOKUP_KEY, None)  # by PageCacheApplication
            answer = self.pages.respond(request, self.render, looked_up)
            response, status = answer.response, answer.outcome
        else:
            rendered = self.render(request)
            response = rendered.response
            status = bypass(rendered.personal) if rendered.personal else None
            if status is None and not rendered.recorder.cacheable:
                status = bypass(rendered.recorder.uncacheable or "data changed")
        if status is not None:
            # A plain str: WSGI servers may refuse a str subclass (wsgiref asserts it).
            response["X-Strata"] = str(status)
        if self.purges:
            # A request that wrote answers once its first purge is out: the next
            # request, from anyone, sees the change (bounded by PURGE_WAIT).
            tickets.wait_for_tickets(self.conf.purge_wait)
        response["X-Strata-Server"] = self._server()
        return response, status

    def process_exception(self, request: HttpRequest, exception: Exception):
        """The database is down: a clear 503 page instead of a server error."""
        if is_database_unavailable(exception):
            return database_unavailable(request, exception)
        return None

    def render(self, request: HttpRequest, seed: dict[str, str] | None = None) -> Rendered:
        """Run the view under a recorder and decide whether its response is shared."""
        if not self.tracks_reads:
            response = self.get_response(request)
            view_cache_control = response.get("Cache-Control", "")
            reason = apply_edge_cache_control(request, response, self.edge_ttl, self.status_ttls)
            return Rendered(response, _UNTRACKED, reason, view_cache_control)
        with recording() as recorder:
            if seed:
                recorder.add(seed)
            response = self.get_response(request)
        view_cache_control = response.get("Cache-Control", "")
        if has_holes(request):
            # Strata's VCL runs ESI only on pages that ask for it.
            response["Surrogate-Control"] = 'content="ESI/1.0"'
        reason = apply_edge_cache_control(request, response, self.edge_ttl, self.status_ttls)
        if reason is None:
            if self.stale_while_revalidate and "stale-while-revalidate" not in response.get(
                "Cache-Control", ""
            ):
                # RFC 5861: a CDN may serve it this long past s-maxage while it refreshes;
                # purges still remove it at once.
                patch_cache_control(response, stale_while_revalidate=self.stale_while_revalidate)
            if recorder.cacheable:
                _check_still_current(recorder, self.conf.cache_alias)
            if not recorder.cacheable or not set_tag_headers(
                response, recorder.tags, self.tags_header_limit
            ):
                # docs/design.md, protocol rule 5: served to this client, stored nowhere.
                mark_uncacheable(response)
                if recorder.cacheable:
                    recorder.uncacheable = "too many tags for the accelerator's header"
        return Rendered(response, recorder, reason, view_cache_control)


def _check_still_current(recorder, cache_alias: str) -> None:
    """Mark the recorder inconsistent if a version changed while the page was built.

    A version proposed by this request (not created yet) that is still missing has not
    been changed by anyone: a writer's change would have set it.
    """
    if not recorder.snapshot:
        return
    try:
        current, _ = version_store(cache_alias).get_with(recorder.snapshot)
    except CacheUnavailable:
        recorder.uncacheable = "cache unavailable"
        return
    for tag, version in recorder.snapshot.items():
        now = current.get(tag)
        if now != version and not (now is None and tag in recorder.provisional):
            recorder.inconsistent = True
            return


class _Untracked:
    """Stands for a recorder when no layer tracks reads: nothing to store, no tags."""

    snapshot: dict[str, str] = {}
    provisional: set[str] = set()
    tags: set[str] = set()
    cacheable = True
    uncacheable: str | None = None


_UNTRACKED = _Untracked()
