"""The purger: ``strata_purger``, the one process that delivers the invalidation bus to
the accelerators (issue 17, ``docs/bus.md``).

With the bus on (a Redis cache), app processes, management commands and Celery workers
only append to the log kept in Redis; the purger reads it, sends ``xkey`` purges to every
Varnish node and records what each node has received. ``/-/varnish-ready`` follows that
record, so a stack without a running purger fences every accelerator within two seconds
of the first write: ``strata up`` runs one and its supervisor restarts it.

It runs as an app server does: the project's own Python, working directory and
environment (``python -m django strata_purger``), so it sees exactly the settings, cache
and accelerators the app servers see. Two or more may run at once (one per app host on a
multi-host stack): one holds the lease and delivers, the others stand by.

:func:`bus_status` reads the bus's figures (``strata.bus.bus_log().status()``) for
``strata status``, in the project's Python too (see its docstring for why).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .. import __version__
from .appserver import DjangoProject
from .program import Program, StatusRow

__all__ = ["Purger", "bus_status", "BUS_STATUS_CODE"]

# How long a fresh purger must stay alive to count as started: a misconfigured one
# (no accelerators, a cache without a log) exits at once with a CommandError, after
# Django's start-up, well within this.
SETTLE_SECONDS = 1.0
QUIET_SECONDS = 5.0


class Purger(Program):
    """``python -m django strata_purger`` for the stack's project; listens on no port."""

    layer = "purger"
    implementation = "strata_purger"
    ready_timeout = 60.0
    stop_timeout = 10.0  # it exits within about a second of SIGTERM

    def __init__(self, name: str, run_dir: Path, host: str, project: DjangoProject):
        super().__init__(name, run_dir, host, 0)
        self.project = project
        self._started_at = 0.0
        self._log_size_at_start = 0
        # The metrics directory of the app server beside it: the purger's counters
        # (purges, their durations) are served by that server's /-/metrics.
        self.metrics_dir: Path | None = None

    @property
    def address(self) -> str:
        """The host it runs on (it listens on nothing: it only connects out)."""
        return self.host

    def ports(self) -> list[int]:
        return []

    def version(self) -> str:
        return __version__

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "django", "strata_purger"]

    def env(self) -> dict[str, str]:
        extra = {"STRATA_SERVER_NAME": self.name}
        if self.metrics_dir is not None:
            extra["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        return self.project.environment(**extra)

    def cwd(self) -> Path:
        return self.project.directory

    def start(self) -> None:
        try:
            self._log_size_at_start = self.log_path.stat().st_size
        except OSError:
            self._log_size_at_start = 0
        self._started_at = time.monotonic()
        super().start()

    def healthy(self) -> bool:
        """Alive ``SETTLE_SECONDS`` after its start and past Django's start-up: it has
        logged its start line (or, when the project's ``LOGGING`` sends ``strata.bus``
        elsewhere, it has stayed alive ``QUIET_SECONDS``): it did not refuse its settings."""
        alive_for = time.monotonic() - self._started_at
        if not self.running() or alive_for < SETTLE_SECONDS:
            return False
        try:
            logged = self.log_path.stat().st_size > self._log_size_at_start
        except OSError:
            logged = False
        return logged or alive_for >= QUIET_SECONDS

    def status_row(self) -> StatusRow:
        row = super().status_row()
        row.note = "invalidation bus → accelerators"
        return row


# Run in the project's Python: prints the bus's figures as one JSON line, or null when
# the project's cache holds no log (Memcached, the file cache, BUS off).
BUS_STATUS_CODE = """\
import json, django
django.setup()
from strata.bus import bus_log
try:
    log = bus_log()
    figures = None if log is None else log.status()
except Exception as error:  # Redis down or restarting: say so, in one line
    figures = {"error": "the cache does not answer: %s" % (error,)}
print("STRATA-BUS " + json.dumps(figures))
"""
MARKER = "STRATA-BUS "


def bus_status(recorded: dict, timeout: float = 30.0) -> dict | None:
    """The bus figures of a running stack (``strata.bus.bus_log().status()``), read with
    its recorded environment (``environment.json``: ``directory``, ``python``,
    ``environment``); None when its cache holds no log; ``{"error": ...}`` when they
    cannot be read.

    Why a child process: the figures live in the project's Redis, in keys and a format
    that only :mod:`strata.bus` knows, and the CLI runs outside the project's settings.
    Running the project's own Python (as ``strata manage`` does) reads them through the
    one public call, exactly as ``/-/timing/`` shows them, whatever the project's cache
    settings (Sentinel, a password, a prefix). A status file written by the purger would
    need the purger to know about ``strata up``, would go stale when it dies (the very
    moment status matters), and would show one purger's view, not the log's. The price
    is Django's start-up, about a second, once per ``strata status``.
    """
    try:
        result = subprocess.run(
            [recorded["python"], "-c", BUS_STATUS_CODE],
            cwd=recorded["directory"],
            # What strata up recorded is the site's part; the rest (PATH, HOME) is ours.
            env={**os.environ, **recorded["environment"]},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, KeyError, subprocess.TimeoutExpired) as error:
        return {"error": f"cannot read the bus: {error}"}
    for line in result.stdout.splitlines():
        if line.startswith(MARKER):
            try:
                return json.loads(line[len(MARKER) :])
            except ValueError:
                break
    last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"cannot read the bus: {last[0]}"}
