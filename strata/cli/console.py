"""The terminal that every ``strata`` command writes to."""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["console"]

# Piped output (logs, CI) gets long lines instead of Rich's default 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
