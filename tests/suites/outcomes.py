"""Per-test outcomes of a suite run, the failures only Strata causes, and their root causes.

A run leaves ``results.jsonl`` (one line per reported outcome, written by
``apps/strata_suite.py`` or ``apps/strata_suite_pytest.py``) and one ``stats-<pid>.json``
per process that ran queries.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "FAILING",
    "Outcome",
    "Cause",
    "read_outcomes",
    "read_stats",
    "strata_only",
    "root_cause",
    "group_by_cause",
]

FAILING = ("error", "failed", "xpass")
"""Outcomes that fail a run."""

# When one test reports several outcomes (subtests, a teardown error after a pass), the
# first of this order wins.
_SEVERITY = ("error", "failed", "xpass", "passed", "xfail", "skipped")


@dataclass
class Outcome:
    """What happened to one test, and the traceback when it failed."""

    outcome: str
    detail: str = ""

    @property
    def failing(self) -> bool:
        """Whether the test failed (an error, a failure, an unexpected success)."""
        return self.outcome in FAILING


def read_outcomes(path: Path) -> dict[str, Outcome]:
    """Test id → outcome, from a run's ``results.jsonl`` (empty when it wrote none)."""
    outcomes: dict[str, Outcome] = {}
    if not path.exists():
        return outcomes
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed run
        new = Outcome(entry["outcome"], entry.get("detail", ""))
        old = outcomes.get(entry["id"])
        if old is None or _SEVERITY.index(new.outcome) < _SEVERITY.index(old.outcome):
            if old is not None and old.failing and new.failing:
                new.detail = f"{old.detail}\n{new.detail}"
            outcomes[entry["id"]] = new
        elif old.failing and new.failing:
            old.detail = f"{old.detail}\n{new.detail}"
    return outcomes


def read_stats(out: Path) -> Counter[str]:
    """The query-cache counters of every process of a run, summed."""
    total: Counter[str] = Counter()
    for path in sorted(out.glob("stats-*.json")):
        try:
            total.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return total


def strata_only(with_strata: dict[str, Outcome], without: dict[str, Outcome]) -> list[str]:
    """Tests that fail with Strata and did not fail without it (or did not run without it)."""
    return sorted(
        test
        for test, outcome in with_strata.items()
        if outcome.failing and not (test in without and without[test].failing)
    )


@dataclass(frozen=True)
class Cause:
    """A failure's root cause: the exception, and the innermost frame inside ``strata/``."""

    exception: str
    message: str
    strata_frame: str
    """``strata/querycache/monkey_patch.py:213 in _read`` or ``-`` (no Strata frame)."""
    test_frame: str = field(default="-", compare=False)
    """The innermost frame outside Strata, Django and the standard library (the app's) of
    the first test of a group (not part of the cause: tests of one cause differ in it)."""


_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")


_NOT_EXCEPTION = ("Traceback", "During handling", "The above exception")


def root_cause(detail: str) -> Cause:
    """The cause of a failure from its traceback text (Python's format, ``--tb=native``)."""
    frames: list[tuple[str, str, str]] = []
    exception, message = "?", ""
    in_traceback = False  # the exception line is the first unindented one after frames
    for line in detail.splitlines():
        frame = _FRAME.match(line)
        if frame:
            frames.append((frame["path"], frame["line"], frame["func"]))
            in_traceback = True
        elif line.startswith(_NOT_EXCEPTION):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            in_traceback = False
            match = _EXCEPTION.match(line)
            if match:
                exception, message = match["type"], (match["message"] or "").strip()
    if exception == "?" and detail.strip():
        exception, message = "-", detail.strip().splitlines()[-1]
    strata = [f for f in frames if _strata_path(f[0])]
    app = [f for f in frames if not _strata_path(f[0]) and _app_path(f[0])]
    return Cause(
        exception=exception,
        message=_normalize(message),
        strata_frame=_describe(strata[-1], _strata_path(strata[-1][0])) if strata else "-",
        test_frame=_describe(app[-1], _short(app[-1][0])) if app else "-",
    )


def _strata_path(path: str) -> str:
    """``strata/...`` for a file of the installed Strata wheel, else an empty string."""
    marker = "/site-packages/strata/"
    return "strata/" + path.split(marker, 1)[1] if marker in path else ""


_NOT_APP = ("django", "strata", "_pytest", "pytest_django", "pluggy", "psycopg", "redis")


def _app_path(path: str) -> bool:
    """A file of the app or its suite: in its sdist, or installed and not infrastructure."""
    if "/suites/src/" in path:
        return True
    if "/site-packages/" not in path:
        return False  # the standard library
    return path.split("/site-packages/", 1)[1].split("/", 1)[0] not in _NOT_APP


def _short(path: str) -> str:
    if "/suites/src/" in path:  # .strata/suites/src/<name-version>/<top>/...
        return path.split("/suites/src/", 1)[1].split("/", 2)[-1]
    return path.split("/site-packages/", 1)[-1]


def _describe(frame: tuple[str, str, str], path: str) -> str:
    return f"{path}:{frame[1]} in {frame[2]}"


def _normalize(message: str) -> str:
    """The message without what differs between tests of one cause (ids, addresses)."""
    message = message.splitlines()[0] if message else ""
    message = re.sub(r"0x[0-9a-f]+", "0x…", message)
    message = re.sub(r'"[^"]*"', '"…"', message)  # SQL identifiers: constraints, tables
    message = re.sub(r"\b\d+\b", "N", message)
    return message[:240]


def group_by_cause(failures: dict[str, Outcome]) -> list[tuple[Cause, list[str]]]:
    """Failures grouped by root cause, the largest group first."""
    groups: dict[Cause, list[str]] = {}
    for test, outcome in sorted(failures.items()):
        groups.setdefault(root_cause(outcome.detail), []).append(test)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0].exception))
