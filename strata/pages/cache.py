"""The page cache: whole responses in the shared cache, valid while their tags are.

Django's per-site cache keys pages by URL and forgets them after a timeout; this one
stores each page with the versions of the tags it was built from (every query and
fragment the view used) and serves it only while every version is still current
(``docs/design.md``, the consistency protocol). So a write shows at once, and pages it did not
touch stay cached.

The hit path runs before any other middleware and makes one round trip when the tags of
the key are remembered in this process (the page and the current versions of its tags in
one multi-get), two otherwise (the page, then its versions). A cold key is rendered once
while concurrent requests wait for it (single-flight); a page past its lifetime but still
valid is served while one request refreshes it (stale-while-revalidate).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol, TypeGuard

from django.conf import settings as django_settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from ..conf import StrataSettings
from ..edge.outcomes import Outcome, bypass
from ..edge.policy import request_bypass_reason
from ..tags.naming import ALL
from ..tags.stores import version_store
from ..tags.versions import CacheUnavailable
from .entries import PASS_MARKER, Entry, Page, PassMarker
from .holes import hole_prefix
from .keys import NotCacheable, page_key, strip_ignored_parameters

__all__ = ["PageCache", "Answer", "Rendered"]

log = logging.getLogger("strata.pages")

# Seconds a pass marker (strata.pages.entries.PassMarker) stays: each request that finds
# it says why its own answer was not stored.
_PASS_TIMEOUT = 30
_MEMO_SIZE = 10_000
# Headers that belong to one response, not to the page.
# Wall-clock time for lifetimes (entries are shared by machines); tests move it.
clock = time.time
_UNSTORED_HEADERS = frozenset({"set-cookie", "x-strata", "x-strata-server", "date"})


class Reads(Protocol):
    """What the page cache asks of the reads a page was built from: a
    :class:`~strata.tags.recorder.Recorder`, or the middleware's stand-in when nothing
    tracks reads."""

    @property
    def snapshot(self) -> dict[str, str]: ...

    @property
    def provisional(self) -> set[str]: ...

    @property
    def cacheable(self) -> bool: ...

    @property
    def uncacheable(self) -> str | None: ...


@dataclass
class Rendered:
    """A response built by the view, with what the page recorder saw while it ran."""

    response: HttpResponseBase
    recorder: Reads
    personal: str | None
    """Why the response is personal (not stored anywhere), or ``None`` when shared."""
    view_cache_control: str = ""
    """``Cache-Control`` as the view left it, before Strata added the edge lifetime."""


@dataclass
class Answer:
    """What the page cache did for a request: the response and its ``X-Strata`` word."""

    response: HttpResponseBase
    outcome: str
    """An :class:`~strata.edge.outcomes.Outcome`, or ``bypass: <reason>``."""


class PageCache:
    """Serve and store whole pages. ``render(request)`` builds a page on a miss."""

    def __init__(self, conf: StrataSettings):
        self.conf = conf.page_cache
        self.cache_alias = conf.cache_alias
        self.cache = caches[conf.cache_alias]
        self.store = version_store(conf.cache_alias)
        # Only Django's own compression makes gzip and identity different pages.
        self.vary_on_encoding = any(
            path.endswith("GZipMiddleware") for path in django_settings.MIDDLEWARE
        )
        # key -> the tags its page had last time: read with the page in one round trip.
        self._memo: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    # -- policy -------------------------------------------------------------------------

    def bypass_reason(self, request: HttpRequest) -> str | None:
        """Why ``request`` cannot use the page cache at all, before any lookup.

        A request that may not be shared (``strata.edge.policy``: a method, credentials,
        messages waiting for this person) neither reads the cache nor leaves anything in
        it: its reason is about the request, not the page, and must not reach another.
        """
        reason = request_bypass_reason(request)
        if reason is not None:
            return reason
        for prefix in self.conf.exclude_paths:
            if request.path.startswith(prefix):
                return f"excluded path {prefix}"
        holes = hole_prefix()
        if holes is not None and request.path.startswith(holes):
            return "personal hole"
        return None

    def lifetime(self, rendered: Rendered) -> int:
        """Seconds a page is fresh: the view's own ``s-maxage`` if it set one, else by status."""
        for part in rendered.view_cache_control.split(","):
            name, _, value = part.strip().partition("=")
            if name.lower() == "s-maxage" and value.strip().isdigit() and int(value) > 0:
                return int(value)
        return self.conf.status_timeouts.get(rendered.response.status_code, self.conf.timeout)

    # -- the request --------------------------------------------------------------------

    def key_for(self, request: HttpRequest) -> str:
        """The page key of ``request``; raises :class:`NotCacheable`."""
        return page_key(
            request,
            self.conf.ignored_parameters,
            self.conf.max_query_string,
            self.vary_on_encoding,
        )

    def fresh_hit(self, request: HttpRequest) -> tuple[str, Entry | None, dict] | None:
        """Look ``request`` up: ``(key, entry, versions)``, or None when it cannot be cached.

        Raises :class:`CacheUnavailable`. ``entry`` is a fresh, valid page only when
        :meth:`is_fresh_hit` says so; otherwise hand the triple to :meth:`respond`.
        """
        if self.bypass_reason(request) is not None:
            return None
        try:
            key = self.key_for(request)
        except NotCacheable:
            return None
        entry, versions = self._lookup(key)
        return key, entry, versions

    def look_up_key(self, key: str) -> tuple[str, Entry | None, dict]:
        """:meth:`fresh_hit` for a request already found cacheable under ``key``."""
        entry, versions = self._lookup(key)
        return key, entry, versions

    def is_fresh_hit(self, entry: Entry | None, versions: dict) -> TypeGuard[Page]:
        """True when ``entry`` is a page that may be served as it is."""
        return type(entry) is Page and self._valid(entry, versions) and clock() < entry.fresh_until

    def respond(
        self,
        request: HttpRequest,
        render: Callable[..., Rendered],
        looked_up: tuple[str, Entry | None, dict] | None = None,
    ) -> Answer:
        """Answer ``request`` from the cache, or render it once and store it.

        ``looked_up``: what :meth:`fresh_hit` found for this request already (the WSGI
        layer looked before Django ran), so it is not read twice.
        """
        reason = self.bypass_reason(request)
        if reason is not None:
            rendered = render(request)
            return Answer(rendered.response, bypass(reason))
        try:
            key = self.key_for(request)
        except NotCacheable as exc:
            rendered = render(request)
            return Answer(rendered.response, bypass(str(exc)))
        strip_ignored_parameters(request, self.conf.ignored_parameters)

        try:
            if looked_up is not None and looked_up[0] == key:
                entry, versions = looked_up[1], looked_up[2]
            else:
                entry, versions = self._lookup(key)
        except CacheUnavailable:
            rendered = render(request)
            return Answer(rendered.response, bypass("cache unavailable"))

        if type(entry) is PassMarker:
            # Hit-for-miss: render at once, without the lock; this answer stores itself
            # (a shared page replaces the marker) and says its own word, never the one
            # of the request that left the marker (which stays until it expires: a
            # personal answer does not write it again).
            return self._render_and_store(request, render, key, versions, locked=False, marked=True)
        if type(entry) is Page and self._valid(entry, versions):
            if clock() < entry.fresh_until:
                return Answer(self._response(request, entry), Outcome.PAGE_HIT)
            # Expired but valid: one request refreshes it, the others get it meanwhile.
            if not self._lock(key):
                return Answer(self._response(request, entry), Outcome.PAGE_STALE)
            refreshed = self._render_and_store(request, render, key, versions, locked=True)
            if refreshed.response.status_code >= 500:
                # Stale-if-error (RFC 5861): the copy is valid, only old; the database
                # or the view failing now is no reason to show an error page instead.
                return Answer(self._response(request, entry), Outcome.PAGE_STALE)
            return refreshed

        if not self._lock(key):
            waited = self._wait_for(key)
            if waited is not None:
                return Answer(self._response(request, waited), Outcome.PAGE_HIT)
            rendered = render(request)
            return Answer(rendered.response, self._miss_word(rendered))
        return self._render_and_store(request, render, key, versions, locked=True)

    # -- mechanism ----------------------------------------------------------------------

    def _lookup(self, key: str) -> tuple[Entry | None, dict]:
        """The stored entry and the current versions of its tags (and of ``*``).

        With a near cache, a page found valid is kept in this process until one of its
        versions (or the page's own key) changes: the next hit is one dictionary lookup.
        """
        store = self.store
        checked = store.checked(key)
        if checked is not None:
            return checked, checked.snapshot  # its versions are the current ones
        token = store.check_token()
        remembered = self._memo.get(key, ())
        tags = (ALL, *remembered)
        versions, extras = store.get_with(tags, [key])
        entry = extras.get(key)
        if type(entry) is Page:
            unknown = [tag for tag in entry.snapshot if tag not in versions]
            if unknown:
                more, _ = store.get_with(unknown)
                versions.update(more)
            if unknown or not remembered:
                self._remember(key, tuple(entry.snapshot))
            if token is not None and self._valid(entry, versions):
                store.keep_checked(key, entry, entry.snapshot, [key], token, len(entry.content))
        return entry, versions

    def _remember(self, key: str, tags: tuple[str, ...]) -> None:
        # Threads of one worker share the memo; a key evicted meanwhile is just forgotten.
        with suppress(KeyError):
            self._memo[key] = tags
            self._memo.move_to_end(key)
            if len(self._memo) > _MEMO_SIZE:
                self._memo.popitem(last=False)

    @staticmethod
    def _valid(page: Page, versions: dict) -> bool:
        if versions is page.snapshot:
            return True  # checked in this process, and nothing changed since (_lookup)
        return all(versions.get(tag) == version for tag, version in page.snapshot.items())

    @staticmethod
    def _response(request: HttpRequest, page: Page) -> HttpResponse:
        content = page.content
        response = HttpResponse(b"" if request.method == "HEAD" else content, status=page.status)
        for name, value in page.headers:
            response[name] = value
        if request.method == "HEAD":
            response["Content-Length"] = str(len(content))
        return response

    def _lock(self, key: str) -> bool:
        """Take the right to render ``key`` (single-flight); False when another has it."""
        try:
            return bool(self.cache.add(key + ":lock", secrets.token_hex(4), self.conf.lock_timeout))
        except Exception as exc:
            log.warning("strata: page lock unavailable (%s); rendering", exc)
            return True

    def _unlock(self, key: str) -> None:
        with suppress(Exception):
            self.cache.delete(key + ":lock")

    def _wait_for(self, key: str) -> Page | None:
        """Wait (bounded) for the request rendering ``key``; its page, or None to render."""
        deadline = time.monotonic() + self.conf.lock_wait
        pause = 0.01
        while time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 1.5, 0.1)
            try:
                found = self.cache.get_many([key, key + ":lock"])
            except Exception:
                return None
            entry = found.get(key)
            if entry is not None:
                if type(entry) is not Page:
                    return None
                try:
                    versions, _ = self.store.get_with(entry.snapshot)
                except CacheUnavailable:
                    return None
                return entry if self._valid(entry, versions) else None
            if key + ":lock" not in found:
                return None  # the renderer gave up or could not store: render ourselves
        return None

    def _render_and_store(
        self,
        request: HttpRequest,
        render,
        key: str,
        versions: dict,
        *,
        locked: bool,
        marked: bool = False,
    ) -> Answer:
        # "*" was read before the view ran: a page depends on everything-invalidations.
        seed = {ALL: versions[ALL]} if versions.get(ALL) else None
        try:
            rendered = render(request, seed=seed)
            return self._store(request, rendered, key, marked)
        finally:
            if locked:
                self._unlock(key)

    def _store(
        self, request: HttpRequest, rendered: Rendered, key: str, marked: bool = False
    ) -> Answer:
        response, recorder = rendered.response, rendered.recorder
        if response.status_code >= 500:
            # An error says nothing about the page: store neither it nor a "pass" marker
            # (which would also replace a stale copy still worth serving).
            return Answer(response, bypass(f"status {response.status_code}"))
        if rendered.personal is not None:
            if not marked:
                self._store_pass(key)
            return Answer(response, self._miss_word(rendered))
        if request.method != "GET" or not recorder.cacheable:
            return Answer(response, self._miss_word(rendered))
        if getattr(response, "streaming", False) or not isinstance(response, HttpResponse):
            # A shared stream (a static file) goes to the accelerator as it is; the page
            # cache would have to read it whole into memory first. (Only an HttpResponse
            # has a ``content`` to store.)
            return Answer(response, bypass("streaming response"))
        if not self.vary_on_encoding and "accept-encoding" in response.get("Vary", "").lower():
            # Compressed by the view itself: one key cannot hold both encodings.
            return Answer(response, bypass("Vary: Accept-Encoding without GZipMiddleware"))
        lifetime = self.lifetime(rendered)
        now = clock()
        headers = [
            (name, value)
            for name, value in response.items()
            if name.lower() not in _UNSTORED_HEADERS
        ]
        page = Page(
            dict(recorder.snapshot), now + lifetime, response.status_code, headers, response.content
        )
        try:
            self.store.store(
                key,
                page,
                lifetime + self.conf.stale_while_revalidate,
                recorder.snapshot,
                recorder.provisional,
                immediate=True,
            )
            self._remember(key, tuple(recorder.snapshot))
        except CacheUnavailable:
            pass
        except (TypeError, AttributeError) as exc:
            log.warning("strata: could not store the page %s (%s)", request.path, exc)
        return Answer(response, Outcome.PAGE_MISS)

    def _store_pass(self, key: str) -> None:
        with suppress(Exception):
            self.cache.set(key, PASS_MARKER, _PASS_TIMEOUT)

    @staticmethod
    def _miss_word(rendered: Rendered) -> str:
        if rendered.personal is not None:
            return bypass(rendered.personal)
        if not rendered.recorder.cacheable:
            return bypass(rendered.recorder.uncacheable or "data changed while the page was built")
        return Outcome.PAGE_MISS
