"""Record the tags (and versions) of everything read while an artifact is built.

Recorders nest: a page's recorder receives the tags of every query and fragment read
inside it, including those served from cache, because each read reports to every
active recorder. If the same tag is seen with two versions while one artifact is built,
the database changed under it: the artifact is ``inconsistent`` and must not be stored
(``docs/design.md``, rule 5).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "Recorder",
    "recording",
    "current_tags",
    "current_recorder",
    "outermost_recorder",
    "record",
    "taint",
    "recording_active",
]

_active: contextvars.ContextVar[tuple[Recorder, ...]] = contextvars.ContextVar(
    "strata_recorders", default=()
)


class Recorder:
    """The tags an artifact depends on, with the version of each seen first."""

    def __init__(self) -> None:
        self.snapshot: dict[str, str] = {}
        self.provisional: set[str] = set()
        """Tags whose versions were proposed, not read: whoever stores must create them."""
        self.proposed: dict[str, str] = {}
        """Outside a request, the tokens proposed for missing versions while this (outermost)
        recorder is open: every read of a tag must propose the same one."""
        self.inconsistent = False
        self.uncacheable: str | None = None
        """Why the artifact must not be stored: it read something whose tags are unknown."""

    @property
    def tags(self) -> set[str]:
        """The tags recorded so far."""
        return set(self.snapshot)

    def add(self, snapshot: dict[str, str], provisional=()) -> None:
        """Record the versions one read depended on (``provisional``: proposed, not read)."""
        for tag, version in snapshot.items():
            seen = self.snapshot.setdefault(tag, version)
            if seen != version:
                self.inconsistent = True
        if provisional:
            self.provisional.update(provisional)

    def merge(self, other: Recorder) -> None:
        """Take everything ``other`` recorded (a fragment inheriting its page's reads)."""
        self.add(other.snapshot, other.provisional)
        if other.inconsistent:
            self.inconsistent = True
        if other.uncacheable is not None and self.uncacheable is None:
            self.uncacheable = other.uncacheable

    @property
    def cacheable(self) -> bool:
        """True when what was built from these reads may be stored."""
        return not self.inconsistent and self.uncacheable is None


@contextmanager
def recording() -> Iterator[Recorder]:
    """Collect the tags of every read inside the block (nested blocks pass theirs up)."""
    recorder = Recorder()
    token = _active.set(_active.get() + (recorder,))
    try:
        yield recorder
    finally:
        _active.reset(token)


def record(snapshot: dict[str, str], provisional=()) -> None:
    """Report a read's snapshot to every active recorder."""
    for recorder in _active.get():
        recorder.add(snapshot, provisional)


def current_recorder() -> Recorder | None:
    """The innermost active recorder, or ``None`` outside any."""
    active = _active.get()
    return active[-1] if active else None


def outermost_recorder() -> Recorder | None:
    """The first recorder opened in this context, or ``None`` outside any."""
    active = _active.get()
    return active[0] if active else None


def recording_active() -> bool:
    """True inside at least one :func:`recording` block."""
    return bool(_active.get())


def taint(reason: str) -> None:
    """Tell every active recorder that a read bypassed the cache: its tags are unknown."""
    for recorder in _active.get():
        if recorder.uncacheable is None:
            recorder.uncacheable = reason


def current_tags() -> set[str]:
    """The tags recorded by the innermost active recorder (empty outside one)."""
    active = _active.get()
    return active[-1].tags if active else set()
