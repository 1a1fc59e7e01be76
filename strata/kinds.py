"""The kinds of value a ``STRATA`` setting takes: what each accepts, says and becomes.

:mod:`strata.conf` declares each setting with one of these; the declaration's check
(:mod:`strata.checks`) calls :meth:`Kind.accepts`, and :func:`strata.conf.strata_settings`
calls :meth:`Kind.convert` on what was accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Kind",
    "Whole",
    "Seconds",
    "Flag",
    "Text",
    "Choice",
    "Names",
    "Urls",
    "StatusMap",
    "is_number",
    "is_whole",
]


def is_whole(value: Any, minimum: int, maximum: int | None = None) -> bool:
    """An ``int`` (not a ``bool``) from ``minimum`` to ``maximum`` (no bound when None)."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= minimum
        and (maximum is None or value <= maximum)
    )


def is_number(value: Any, minimum: float) -> bool:
    """An ``int`` or ``float`` (not a ``bool``) of at least ``minimum``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= minimum


class Kind:
    """What a setting accepts (:meth:`accepts`), in words (:attr:`expected`), and becomes."""

    @property
    def expected(self) -> str:
        """What this kind accepts, in words (a subclass overrides it: property or string)."""
        return "a value"

    def accepts(self, value: Any) -> bool:
        """True when ``value`` is valid for this kind."""
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        """An accepted value as the settings object holds it."""
        return value


@dataclass(frozen=True)
class Whole(Kind):
    """A whole number within bounds."""

    minimum: int
    maximum: int | None = None

    @property
    def expected(self) -> str:
        if self.maximum is None:
            return f"a whole number >= {self.minimum}"
        return f"a whole number from {self.minimum} to {self.maximum}"

    def accepts(self, value: Any) -> bool:
        return is_whole(value, self.minimum, self.maximum)

    def convert(self, value: Any) -> int:
        return int(value)


@dataclass(frozen=True)
class Seconds(Kind):
    """A number of seconds (whole or not) of at least ``minimum``, held as ``held_as``."""

    minimum: float
    held_as: Callable[[Any], Any] = float

    @property
    def expected(self) -> str:
        return f"a number of seconds >= {self.minimum}"

    def accepts(self, value: Any) -> bool:
        return is_number(value, self.minimum)

    def convert(self, value: Any) -> Any:
        return self.held_as(value)


@dataclass(frozen=True)
class Flag(Kind):
    """``True`` or ``False``."""

    expected = "True or False"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True)
class Text(Kind):
    """A string (starting with ``prefix``); ``None`` too when ``optional``."""

    prefix: str = ""
    optional: bool = False

    @property
    def expected(self) -> str:
        what = f"a string starting with {self.prefix!r}" if self.prefix else "a string"
        return f"{what} or None" if self.optional else what

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        return isinstance(value, str) and value.startswith(self.prefix)


@dataclass(frozen=True)
class Choice(Kind):
    """One of a few strings."""

    choices: tuple[str, ...]

    @property
    def expected(self) -> str:
        return "one of " + ", ".join(map(repr, self.choices))

    def accepts(self, value: Any) -> bool:
        return value in self.choices


@dataclass(frozen=True)
class Names(Kind):
    """A list of strings (names, aliases, prefixes), held as ``container``."""

    container: Callable[[Any], Any] = tuple
    expected = "a list of strings"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list | tuple | set | frozenset) and all(
            isinstance(item, str) for item in value
        )

    def convert(self, value: Any) -> Any:
        return self.container(value)


_BASE_URL = re.compile(r"^https?://[^/\s]+/?$")


@dataclass(frozen=True)
class Urls(Kind):
    """A list of base URLs (``http://host:port``), held without a trailing slash."""

    expected = "a list of base URLs"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list | tuple) and all(
            isinstance(url, str) and _BASE_URL.match(url) for url in value
        )

    def convert(self, value: Any) -> tuple[str, ...]:
        return tuple(url.rstrip("/") for url in value)


@dataclass(frozen=True)
class StatusMap(Kind):
    """HTTP status codes mapped to seconds."""

    expected = "a dict of status codes to seconds"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict) and all(
            is_whole(status, 100) and is_whole(seconds, 1) for status, seconds in value.items()
        )

    def convert(self, value: Any) -> dict[int, int]:
        return dict(value)
