"""Prometheus metrics of the whole stack as Strata sees it, served at ``/-/metrics``.

``path("-/", include("strata.urls"))`` serves them; ``docs/metrics.md`` lists every
metric. With several app-server processes set ``PROMETHEUS_MULTIPROC_DIR`` (a fresh,
empty directory) in the app server's environment before Python starts, and tell
``prometheus_client`` when a worker exits: :func:`process_exited`, or for Gunicorn
``child_exit = strata.metrics.gunicorn_child_exit`` in its config file.

``STRATA['METRICS']['ENABLED']`` (on by default) switches the per-request counting off.
"""

from __future__ import annotations

import os

from prometheus_client import multiprocess

from .registry import MULTIPROC_ENV, tally

__all__ = ["process_exited", "gunicorn_child_exit", "flush", "tally"]


def process_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (its counters stay: they still count)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)


def gunicorn_child_exit(server, worker) -> None:
    """Gunicorn's ``child_exit`` hook: :func:`process_exited` for the worker."""
    process_exited(worker.pid)


def flush() -> None:
    """Move this process's per-request figures into the metric values now."""
    tally.flush()
