"""The one error the stack runner raises: it names the component and its log."""

from __future__ import annotations

from pathlib import Path

__all__ = ["StackError"]


class StackError(Exception):
    """A component of the stack could not be configured, started or stopped.

    ``str(error)`` is a one-line message for a person; ``log`` is where to look next.
    """

    def __init__(self, component: str, message: str, log: Path | None = None, detail: str = ""):
        self.component = component
        self.message = message
        self.log = log
        self.detail = detail
        text = f"{component}: {message}"
        if log is not None:
            text += f" (log: {log})"
        super().__init__(text)
