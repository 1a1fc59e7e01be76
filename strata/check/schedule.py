"""A fault schedule from a TOML file (``strata check --faults FILE``), read like a scenario:
one line naming the file, the line and the key for any mistake."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..tomlfile import Document, TomlFileError, read_text
from .faults import FAULTS

__all__ = ["FaultSchedule", "ScheduleError", "read_schedule"]


class ScheduleError(TomlFileError):
    """A fault schedule that cannot be run."""


@dataclass(frozen=True)
class FaultSchedule:
    """The faults to inject, in order, and the file's optional timing settings."""

    faults: list[str]
    settings: dict[str, float] = field(default_factory=dict)


def read_schedule(path: Path) -> FaultSchedule:
    """Read ``faults = [...]`` and optional ``phase_seconds`` (1-3600) and ``hold_share``
    (0.05-0.9) from ``path``; raises :class:`ScheduleError` on the first mistake."""
    document = Document(
        read_text(path, ScheduleError), str(path), error=ScheduleError, stop_at_first=True
    )
    root = document.root(("faults", "phase_seconds", "hold_share"))
    names = root.strings("faults", expected='a list of fault names, e.g. ["app-kill"]', empty=True)
    for name in names:
        if name not in FAULTS:
            document.fail(("faults",), f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
    if len(set(names)) != len(names):
        document.fail(("faults",), "a fault is named twice")
    settings = {}
    phase_seconds = root.number("phase_seconds", 1, 3600, default=None)
    if phase_seconds is not None:
        settings["phase_seconds"] = float(phase_seconds)
    hold_share = root.number("hold_share", 0.05, 0.9, default=None)
    if hold_share is not None:
        settings["hold_share"] = float(hold_share)
    return FaultSchedule(list(names), settings)
