"""Switch the query cache off for a block, a view, or Strata's own bookkeeping reads."""

from __future__ import annotations

import contextvars
from contextlib import ContextDecorator

__all__ = ["caching_disabled", "caching_is_disabled", "in_orm"]

_disabled: contextvars.ContextVar[int] = contextvars.ContextVar("strata_cache_off", default=0)
in_orm: contextvars.ContextVar[bool] = contextvars.ContextVar("strata_in_orm", default=False)
"""True while a compiler runs a statement: its cursor use is not "raw SQL"."""


class caching_disabled(ContextDecorator):  # noqa: N801  (used like a function)
    """Read from the database, not the cache, inside the block (or the decorated view).

    Writes are still tracked: versions change after commit as usual. Nests.
    """

    def _recreate_cm(self):
        # A decorated view runs in many threads at once: one token per call.
        return type(self)()

    def __enter__(self):
        self._token = _disabled.set(_disabled.get() + 1)
        return self

    def __exit__(self, *exc):
        _disabled.reset(self._token)
        return False


def caching_is_disabled() -> bool:
    """True inside a :class:`caching_disabled` block."""
    return _disabled.get() > 0
