"""One run of a third-party suite: fresh servers, the suite's venv, a bounded process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.suites.outcomes import Outcome, read_outcomes, read_stats
from tests.suites.sdist import REPO, suites_dir
from tests.suites.services import running_services
from tests.suites.thirdparty_apps import App

__all__ = ["Run", "run_suite", "run_logged", "stop_process_group"]

APPS_DIR = REPO / "tests" / "suites" / "apps"

# Variables of the driver's environment that would point the suite at the wrong code.
_DROPPED = ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


@dataclass
class Run:
    """What one run of a suite left."""

    database: str
    strata: bool
    targets: tuple[str, ...]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    returncode: int | None = None
    timed_out: bool = False
    log: Path | None = None

    def count(self, *outcomes: str) -> int:
        """How many tests ended in one of ``outcomes``."""
        return sum(1 for result in self.outcomes.values() if result.outcome in outcomes)


def run_suite(
    app: App,
    python: Path,
    source: Path,
    database: str,
    strata: bool,
    targets: tuple[str, ...],
    tag: str = "",
) -> Run:
    """Run ``targets`` of ``app``'s suite on fresh servers, with or without Strata.

    Each run gets its own PostgreSQL (when ``database`` is postgres) and Redis, so no
    cached result or version outlives it. Output goes to
    ``.strata/suites/runs/<app>-<strata|plain>[-tag]/`` (``output.log``,
    ``results.jsonl``, ``stats-<pid>.json``).
    """
    name = f"{app.name}-{'strata' if strata else 'plain'}{'-' + tag if tag else ''}"
    out = suites_dir() / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run = Run(database, strata, targets, log=out / "output.log")
    with running_services(database, "redis") as services:
        env = {key: value for key, value in os.environ.items() if key not in _DROPPED}
        env.update(app.env.get(database, {}))
        env.update(
            PYTHONPATH=os.pathsep.join(map(str, (APPS_DIR / app.name, APPS_DIR, source))),
            PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(python.parent.parent),
            STRATA_SUITE_CACHE_URL=services.cache_url,
            STRATA_SUITE_STRATA="1" if strata else "0",
            STRATA_SUITE_OUT=str(out),
        )
        if database == "postgres":
            env["STRATA_SUITE_DATABASE_URL"] = services.database_url
        argv = [str(python), *app.command, *targets]
        started = time.monotonic()
        with open(run.log, "w") as log:
            log.write(f"$ {' '.join(argv)}\n(cwd {source})\n\n")
            log.flush()
            run.returncode, run.timed_out = run_logged(argv, source, env, log, app.timeout)
        run.seconds = time.monotonic() - started
    run.outcomes = read_outcomes(out / "results.jsonl")
    run.stats = read_stats(out)
    return run


def run_logged(argv, cwd, env, log, timeout: float, grace: float = 10) -> tuple[int | None, bool]:
    """Run a suite in a process group of its own, its output to ``log``, within ``timeout``.

    Returns its exit status (None when it was stopped) and whether it timed out.
    """
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers share its process group: stopped together
    )
    try:
        return process.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        stop_process_group(process, grace)
        return None, True


def stop_process_group(process: subprocess.Popen, grace: float = 10) -> None:
    """Stop a suite we started and the workers it forked (its process group, by its PID)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
