"""Reading a person's TOML file, where every mistake is one line naming the file, the line
and the key.

``strata config`` (the inventory) and ``strata check`` (a scenario) read their files
through this module, so the same mistake reads the same in both::

    inventory.toml:23: app_server[1].kind: 'apache' (a string) is wrong; expected "gunicorn" or "uwsgi"

A :class:`Document` parses the text (a syntax error is one problem, at its line) and
finds the line of every key (``tomllib`` keeps no positions). Its :class:`Table` readers
check each value's type and range and record a :class:`Problem` for a wrong one instead
of raising: an inventory collects every problem and reports them at once, a scenario
stops at the first. Elements of arrays are numbered from 1, as a person counts them:
``app_server[2]`` is the second ``[[app_server]]``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "REQUIRED",
    "Document",
    "KeyPath",
    "Problem",
    "Table",
    "TomlFileError",
    "key_lines",
    "kind_of",
    "read_text",
]

REQUIRED: Any = object()
"""The default of a key that must be given: its absence is a problem."""

KeyPath = tuple[str | int, ...]
"""Where a value is: keys and 0-based array indexes, ``("app_server", 1, "kind")``."""


@dataclass(frozen=True)
class Problem:
    """One mistake in a file: its line (when known), the key's path and what is wrong."""

    line: int | None
    path: str
    message: str


class TomlFileError(Exception):
    """A file that cannot be used; ``str()`` is one ``file:line: key: message`` per problem."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.format(p) for p in problems))

    def format(self, problem: Problem) -> str:
        """``file:line: key.path: message``."""
        where = self.source + (f":{problem.line}" if problem.line else "")
        return f"{where}: {problem.path + ': ' if problem.path else ''}{problem.message}"


def read_text(path: Path, error: type[TomlFileError] = TomlFileError) -> str:
    """The text of the file at ``path``; one that cannot be read or is not UTF-8 raises ``error``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as failure:
        message = f"cannot read: {failure.strerror or failure}"
    except UnicodeDecodeError:
        message = "not UTF-8 text"
    raise error(str(path), [Problem(None, "", message)]) from None


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),  # before int: True is an int to Python, not to a reader
    (int, "a number"),
    (float, "a decimal number"),
    (str, "a string"),
    (list, "a list"),
    (dict, "a table"),
)


def kind_of(value: Any) -> str:
    """What ``value`` is, in the words of the messages: ``a string``, ``a boolean``, ..."""
    return next((name for kind, name in _KINDS if isinstance(value, kind)), type(value).__name__)


# -- locating keys in the text (tomllib keeps no positions) ------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\"'.-]+(?:\s*\.\s*[A-Za-z0-9_\"'-]+)*)\s*=")


def _split_key(text: str) -> KeyPath:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map key paths (``("app_server", 1, "kind")``, 0-based indexes) to line numbers.

    Good enough for error messages: table headers, arrays of tables and ``key =`` lines.
    """
    lines: dict[KeyPath, int] = {}
    counts: dict[KeyPath, int] = {}
    current: KeyPath = ()
    in_multiline = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.count('"""') % 2 or line.count("'''") % 2:
            in_multiline = not in_multiline
            if not in_multiline:
                continue
        if in_multiline:
            continue
        header = _HEADER.match(line)
        if header:
            name = _split_key(header.group(2))
            if header.group(1) == "[[":
                base = _resolve(name, counts)
                lines.setdefault(base, number)
                index = counts.get(base, 0)
                counts[base] = index + 1
                current = (*base, index)
            else:
                current = _resolve(name, counts)
            lines.setdefault(current, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*current, *_split_key(key.group(1))), number)
    return lines


def _resolve(name: KeyPath, counts: dict[KeyPath, int]) -> KeyPath:
    """``database.replica`` under the latest ``[[database]]`` element, if it is an array."""
    resolved: KeyPath = ()
    for part in name:
        resolved = (*resolved, part)
        if resolved in counts and len(resolved) < len(name):
            resolved = (*resolved, counts[resolved] - 1)
    return resolved


def _display(path: KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            text += ("." if text else "") + part
    return text


# -- the document and its tables ------------------------------------------------------------


class Document:
    """A parsed TOML file and the problems found while reading it.

    A syntax error raises ``error`` at once, with its line. With ``stop_at_first``, the
    first problem raises ``error``; otherwise problems are collected and :meth:`finish`
    raises them all, in the order of the file.
    """

    def __init__(
        self,
        text: str,
        source: str,
        *,
        error: type[TomlFileError] = TomlFileError,
        stop_at_first: bool = False,
    ):
        self.source = source
        self.error = error
        self.stop_at_first = stop_at_first
        self.problems: list[Problem] = []
        try:
            self.data: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as failure:
            message = str(failure)
            found = re.search(r"\(at line (\d+), column \d+\)", message)
            line = int(found.group(1)) if found else None
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
            raise error(source, [Problem(line, "", f"not valid TOML: {message}")]) from None
        self.lines = key_lines(text)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its closest enclosing table."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def problem(self, path: KeyPath, message: str) -> None:
        """Record a problem at ``path`` (raise it, with ``stop_at_first``)."""
        self.problems.append(Problem(self.line_of(path), _display(path), message))
        if self.stop_at_first:
            raise self.error(self.source, self.problems)

    def fail(self, path: KeyPath, message: str) -> NoReturn:
        """Raise a problem after which nothing more can be read."""
        self.problem(path, message)
        raise self.error(self.source, self.problems)

    def finish(self) -> None:
        """Raise every problem found, in the order of the file (problems of no line first)."""
        if self.problems:
            raise self.error(self.source, sorted(self.problems, key=lambda p: p.line or 0))

    def root(self, known: Iterable[str]) -> Table:
        """The whole file as a table whose keys must all be in ``known``."""
        return self.table(self.data, (), known)

    def table(self, data: dict[str, Any], path: KeyPath, known: Iterable[str] | None) -> Table:
        """``data`` at ``path``, its keys checked against ``known`` (``None``: any key)."""
        if known is not None:
            names = list(known)
            for key in data:
                if key not in names:
                    close = difflib.get_close_matches(key, names, n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    self.problem(
                        (*path, key), f"unknown key; {hint}expected one of: {', '.join(names)}"
                    )
        return Table(self, data, path)


class Table:
    """One table of a :class:`Document`, with typed getters.

    A getter returns the value of a key, or its default when the key is absent. A wrong
    value is recorded as ``'four' (a string) is wrong; expected <what>`` and the getter
    returns the default (``None`` for a required key); an absent required key as
    ``missing; expected <what>``.
    """

    def __init__(self, document: Document, data: dict[str, Any], path: KeyPath):
        self.document = document
        self.data = data
        self.path = path

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = REQUIRED,
        *,
        expected: str,
        check: Callable[[Any], bool] | None = None,
    ) -> Any:
        """The value of ``key``, of type ``kind`` (a boolean is no number) and passing ``check``."""
        path = (*self.path, key)
        if key not in self.data:
            if default is REQUIRED:
                self.document.problem(path, f"missing; expected {expected}")
                return None
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        right_type = isinstance(value, kinds) and not (
            isinstance(value, bool) and bool not in kinds
        )
        if not right_type or (check is not None and not check(value)):
            if isinstance(value, bool):
                shown = "true" if value else "false"
            elif isinstance(value, dict | list):
                shown = "this"
            else:
                shown = repr(value)
            self.document.problem(path, f"{shown} ({kind_of(value)}) is wrong; expected {expected}")
            return None if default is REQUIRED else default
        return value

    def string(self, key: str, default: Any = REQUIRED) -> Any:
        """A non-empty string."""
        return self.get(key, str, default, expected="a non-empty string", check=bool)

    def boolean(self, key: str, default: Any = REQUIRED) -> Any:
        """``true`` or ``false``."""
        return self.get(key, bool, default, expected="true or false")

    def integer(self, key: str, low: int, high: int, default: Any = REQUIRED) -> Any:
        """A whole number in ``low..high``."""
        return self.get(
            key,
            int,
            default,
            expected=f"a whole number from {low} to {high}",
            check=lambda v: low <= v <= high,
        )

    def number(self, key: str, low: float, high: float, default: Any = REQUIRED) -> Any:
        """A whole or decimal number in ``low..high``."""
        return self.get(
            key,
            (int, float),
            default,
            expected=f"a number from {low:g} to {high:g}",
            check=lambda v: low <= v <= high,
        )

    def port(self, key: str, default: Any = REQUIRED) -> Any:
        """A TCP port from 1 to 65535."""
        return self.get(
            key, int, default, expected="a port from 1 to 65535", check=lambda v: 0 < v < 65536
        )

    def choice(
        self,
        key: str,
        choices: tuple[str, ...],
        default: Any = REQUIRED,
        *,
        expected: str | None = None,
    ) -> Any:
        """A string that must be one of ``choices`` (``expected`` may say what each means)."""
        return self.get(
            key,
            str,
            default,
            expected=expected or " or ".join(f'"{c}"' for c in choices),
            check=lambda v: v in choices,
        )

    def pattern(self, key: str, regex: re.Pattern, expected: str, default: Any = REQUIRED) -> Any:
        """A string matching ``regex`` entirely."""
        return self.get(
            key, str, default, expected=expected, check=lambda v: bool(regex.fullmatch(v))
        )

    def strings(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        expected: str,
        each: Callable[[str], bool] | None = None,
        empty: bool = False,
    ) -> Any:
        """A list of strings, each passing ``each``; empty only when ``empty`` says so."""
        return self.get(
            key,
            list,
            default,
            expected=expected,
            check=lambda v: (
                (empty or bool(v))
                and all(isinstance(s, str) and (each is None or each(s)) for s in v)
            ),
        )

    def section(self, key: str, known: Iterable[str] | None, *, required: str = "") -> Table | None:
        """The table ``[key]``, or ``None`` when absent (a problem, when ``required`` says
        what it holds)."""
        path = (*self.path, key)
        if key not in self.data:
            if required:
                self.document.problem(self.path, f"missing [{_display(path)}]: expected {required}")
            return None
        value = self.data[key]
        if not isinstance(value, dict):
            self.document.problem(
                path, f"expected a [{_display(path)}] table, got {kind_of(value)}"
            )
            return None
        return self.document.table(value, path, known)

    def empty(self, key: str) -> Table:
        """An empty table at ``key``: an absent optional section, whose getters give defaults."""
        return Table(self.document, {}, (*self.path, key))

    def tables(self, key: str, known: Iterable[str] | None, *, required: bool) -> list[Table]:
        """The elements of the array of tables ``[[key]]``; none (a problem when
        ``required``) if absent or empty."""
        path = (*self.path, key)
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.document.problem(
                path, f"expected [[{_display(path)}]] tables, got {kind_of(value)}"
            )
            return []
        if not value and required:
            self.document.problem(
                self.path, f"missing [[{_display(path)}]]: at least one is needed"
            )
        return [self.document.table(v, (*path, i), known) for i, v in enumerate(value)]
