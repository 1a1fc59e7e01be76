"""A fault inside Strata's hooks is logged once and never reaches the application.

``docs/design.md``, "The cache never breaks a write": where a hook fails, a read falls back
to the database and a write to a broad invalidation; the project's statement runs exactly
as it would without Strata.
"""

from __future__ import annotations

import logging

from .stats import stats

__all__ = ["report_fault"]

log = logging.getLogger("strata.querycache")
_reported: set[str] = set()


def report_fault(where: str) -> None:
    """Log the exception being handled (once per ``where`` and process) and count it."""
    stats["fault"] += 1
    if where in _reported:
        log.debug("strata: fault while %s (already reported)", where, exc_info=True)
        return
    _reported.add(where)
    log.exception(
        "strata: a fault while %s; the statement ran without the query cache "
        "(reads from the database, writes invalidate their whole table)",
        where,
    )
