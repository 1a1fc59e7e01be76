"""Cached template fragments whose dependencies are recorded, never declared.

Django's ``{% cache %}`` tag asks for a key name and leaves invalidation to a timeout or
to hand-written version numbers. Here a fragment is stored with the tag versions of
everything it was built from, and is a hit only while all of them are current (the
consistency protocol of ``docs/design.md``):

* **Its own reads.** The block renders inside a nested :func:`~strata.tags.recording`;
  every query it runs records its tags and versions there (snapshotted before the read).
* **What the page read before it.** Objects in the template context (the ``article``
  the view fetched) were read before the block: their tags are in the enclosing
  recorder, not in the fragment's. A fragment showing ``{{ article.title }}`` runs no
  query, yet depends on that row. So a fragment inherits everything its enclosing
  recorder holds when it starts. That is correct by construction; the price is some
  over-invalidation (a fragment also goes when something else the page read first
  changes).
* **Its children.** A nested fragment served from cache reports its stored snapshot to
  every active recorder, so the parent (and the page) carry the child's tags either
  way (Russian doll caching).

What the recorders cannot see is what tells two uses of one block apart: values that
did not come from the database, or objects that differ between pages. Those go into the
key as ``vary`` values, as with Django's tag (``{% cached article %}``). The key is made
of the template, the block's line and source, the vary values and the active language;
nobody writes key names or version numbers.

A fragment is rendered without the cache (neither served nor stored) whenever its
dependencies cannot be known or trusted: outside any recorder, when the enclosing
recorder is already uncacheable or inconsistent, inside a transaction that has written
(rule 3: the writer must see its own writes), inside ``caching_disabled()``, with a
vary value that has no stable identity, or when the cache server is down.

A hit costs one round trip in the usual case: the tags a key was last seen with are
remembered per process, and their versions are fetched together with the artifact.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from uuid import UUID

from django.db import connections
from django.db.models import Model
from django.utils.functional import Promise
from django.utils.translation import get_language

from ..conf import strata_settings
from ..debug import trace
from ..querycache.control import caching_is_disabled
from ..tags.invalidation import dirty_tables
from ..tags.keyspace import FRAGMENT_PREFIX
from ..tags.recorder import current_recorder, record, recording
from ..tags.stores import version_store
from ..tags.versions import CacheUnavailable, VersionStore

__all__ = [
    "FRAGMENT_PREFIX",
    "Fragment",
    "fragment_key",
    "vary_token",
    "source_digest",
    "render_cached",
    "stats",
    "reset_stats",
    "forget_remembered",
    "rendering_to_store",
]

log = logging.getLogger("strata.fragments")

stats: Counter[str] = Counter()
"""Per-process counters: ``hit``, ``miss``, ``store``, ``bypass:<reason>``, ``error``."""


def reset_stats() -> None:
    """Zero every counter."""
    stats.clear()


@dataclass(frozen=True)
class Fragment:
    """Where a cached block is and what it says: the fixed part of its key.

    ``origin`` names the template (its loader name, or its path), ``line`` is the line of
    the opening tag, and ``digest`` is a hash of the block's source, so that a deploy
    that changes the block changes its keys instead of serving the old markup.
    """

    origin: str
    line: int
    digest: str = ""


def source_digest(*parts: str) -> str:
    """A short hash of a block's source text (whatever spelling the engine offers)."""
    text = repr(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha1(text).hexdigest()[:16]


# -- keys -------------------------------------------------------------------------------

_MAX_DEPTH = 8
# Checked in this order: bool before int, datetime before date.
_SCALARS: tuple[type[object], ...] = (
    bool,
    int,
    float,
    str,
    bytes,
    Decimal,
    datetime,
    date,
    time,
    timedelta,
    UUID,
)


def vary_token(value: object, _depth: int = 0) -> str | None:
    """A stable spelling of a vary value, or ``None`` if it has no stable identity.

    Model instances are named by label and primary key (an unsaved one has none);
    scalars by type and ``repr``; lists, tuples, sets and dicts by their items. Anything
    else (a QuerySet, an object whose ``repr`` holds its memory address) would make a
    key that is never found again, or worse, the same key for different content.
    """
    if _depth > _MAX_DEPTH:
        return None
    if value is None:
        return "None"
    if isinstance(value, Model):
        pk = value.pk
        if pk is None:
            return None
        inner = vary_token(pk, _depth + 1)
        return None if inner is None else f"model:{value._meta.label}:{inner}"
    if isinstance(value, Enum):
        kind = type(value)
        return f"enum:{kind.__module__}.{kind.__qualname__}.{value.name}"
    if isinstance(value, Promise):  # a lazy translation: the language is in the key too
        return f"str:{str(value)!r}"
    for base in _SCALARS:
        if isinstance(value, base):
            # The base type's repr: a SafeString and an equal str are the same value.
            return f"{base.__name__}:{base.__repr__(value)}"
    if isinstance(value, list | tuple):
        items = _item_tokens(value, _depth + 1)
        return None if items is None else f"{type(value).__name__}:[{','.join(items)}]"
    if isinstance(value, set | frozenset):
        items = _item_tokens(value, _depth + 1)
        return None if items is None else f"set:{{{','.join(sorted(items))}}}"
    if isinstance(value, dict):
        pairs = []
        for key, item in value.items():
            key_token, item_token = vary_token(key, _depth + 1), vary_token(item, _depth + 1)
            if key_token is None or item_token is None:
                return None
            pairs.append(f"{key_token}={item_token}")
        return f"dict:{{{','.join(sorted(pairs))}}}"
    return None


def _item_tokens(values: Iterable[object], depth: int) -> list[str] | None:
    """The tokens of ``values`` in order, or None if one of them has no stable identity."""
    tokens = []
    for value in values:
        token = vary_token(value, depth)
        if token is None:
            return None
        tokens.append(token)
    return tokens


def fragment_key(fragment: Fragment, vary: Iterable[object], language: str | None) -> str | None:
    """The cache key of one use of a block, or ``None`` when a vary value is unstable."""
    parts = [fragment.origin, str(fragment.line), fragment.digest, language or ""]
    for value in vary:
        token = vary_token(value)
        if token is None:
            return None
        parts.append(token)
    text = repr(tuple(parts)).encode("utf-8", "surrogatepass")
    return FRAGMENT_PREFIX + hashlib.sha1(text).hexdigest()


# -- the tags a key was last seen with ---------------------------------------------------

_REMEMBER = 4096
_remembered: OrderedDict[str, tuple[str, ...]] = OrderedDict()


def _recall(key: str) -> tuple[str, ...]:
    tags = _remembered.get(key, ())
    if tags:
        with suppress(KeyError):  # another thread may have just evicted it
            _remembered.move_to_end(key)
    return tags


def _remember(key: str, tags: Iterable[str]) -> None:
    tags = tuple(sorted(tags))
    if _remembered.get(key) == tags:
        return
    _remembered[key] = tags
    if len(_remembered) > _REMEMBER:
        with suppress(KeyError):
            _remembered.popitem(last=False)


def forget_remembered() -> None:
    """Drop the remembered tags of every key (the next hit costs two round trips)."""
    _remembered.clear()


# -- the mechanism ----------------------------------------------------------------------

_to_store: ContextVar[bool] = ContextVar("strata_fragment_to_store", default=False)


def rendering_to_store() -> bool:
    """True while a block renders markup that may be stored and served to other requests.

    Such markup must suit every request that can get it: a tag that would render
    something only for this one (``{% personal %}`` fills a visitor's box in place) must
    render what every request can use instead (the hole).
    """
    return _to_store.get()


_warned: set[Fragment] = set()


def _bypass(reason: str, render: Callable[[], str]) -> str:
    """Render without the cache; the reads still report to the active recorders."""
    stats[f"bypass:{reason}"] += 1
    if (t := trace.active.get()) is not None:
        t.fragment("bypass", reason=reason)
    return render()


def _transaction_wrote() -> bool:
    """Has an open transaction written? Then its own reads must not come from cache."""
    return any(dirty_tables(c.alias) for c in connections.all(initialized_only=True))


def _lookup(store: VersionStore, key: str) -> tuple[dict[str, str], str] | None:
    """``(snapshot, html)`` if every version in the stored snapshot is current, else ``None``.

    Raises :class:`CacheUnavailable`.
    """
    versions, extras = store.get_with(_recall(key), [key])
    cached = extras.get(key)
    if not (isinstance(cached, tuple) and len(cached) == 2 and isinstance(cached[0], dict)):
        return None
    snapshot, html = cached
    unseen = [tag for tag in snapshot if tag not in versions]
    if unseen:  # the tags changed since this process last saw the key
        more, _ = store.get_with(unseen)
        versions.update(more)
    if all(versions.get(tag) == version for tag, version in snapshot.items()):
        _remember(key, snapshot)
        return cached
    return None


def render_cached(
    fragment: Fragment,
    vary: Iterable[object],
    render: Callable[[], str],
    timeout: int | None = None,
) -> str:
    """Return the block's markup: from the cache while its tags are current, else ``render()``.

    ``vary`` are the values that tell uses of the block apart; ``timeout`` (seconds)
    defaults to ``STRATA['FRAGMENT_CACHE']['TIMEOUT']``, and ``0`` or less means
    "do not store". On a hit the stored snapshot is recorded into every active recorder;
    on a miss the markup is stored with the tags of the reads it depended on.
    """
    conf = strata_settings()
    if not conf.fragment_cache.enabled:
        return render()
    if (t := trace.active.get()) is not None:
        t.fragment_started(fragment)
    enclosing = current_recorder()
    if enclosing is None:
        return _bypass("no recorder", render)
    if not enclosing.cacheable:
        return _bypass("page uncacheable", render)
    if caching_is_disabled():
        return _bypass("caching disabled", render)
    if _transaction_wrote():
        return _bypass("written in this transaction", render)
    key = fragment_key(fragment, vary, get_language())
    if key is None:
        if fragment not in _warned:
            _warned.add(fragment)
            log.warning(
                "strata: {%% cached %%} at %s line %d varies on a value without a stable "
                "identity (an unsaved object, a QuerySet...); it renders uncached",
                fragment.origin,
                fragment.line,
            )
        return _bypass("unstable vary", render)
    if timeout is None:
        timeout = conf.fragment_cache.timeout
    store = version_store(conf.cache_alias)

    try:
        found = _lookup(store, key)
    except CacheUnavailable:
        stats["error"] += 1
        return _bypass("cache unavailable", render)
    if found is not None:
        stats["hit"] += 1
        snapshot, html = found
        record(snapshot)
        if t is not None:
            t.fragment("hit", key, snapshot)
        return html

    stats["miss"] += 1
    if t is not None:
        t.fragment("miss", key)
    with recording() as own:
        own.merge(enclosing)  # what the page read before the block: its context
        # An enclosing block being stored stores this block's markup inside its own.
        to_store = _to_store.set(timeout > 0 or _to_store.get())
        try:
            html = render()
        finally:
            _to_store.reset(to_store)
    if not own.cacheable or timeout <= 0:
        return html
    try:
        store.store(key, (own.snapshot, str(html)), timeout, own.snapshot, own.provisional)
    except CacheUnavailable:
        stats["error"] += 1
        return html
    except (TypeError, AttributeError, pickle.PicklingError) as exc:
        stats["error"] += 1
        log.warning("strata: could not store a fragment (%s)", exc)
        return html
    stats["store"] += 1
    if t is not None:
        t.fragment_stored(key, own.snapshot)
    _remember(key, own.snapshot)
    return html
