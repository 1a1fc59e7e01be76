"""Third-party Django apps' own test suites, with Strata's query cache on.

    python -m tests.suites.thirdparty [APP ...] [--database postgres|sqlite] [--without-strata]

For each app (``tests/suites/thirdparty_apps.py``: pinned releases, how each suite runs)
Strata is built into a wheel and installed with the app and its test requirements into
a virtualenv of the suite's own (``.strata/suites/venv-<Django major>/<app>/``, kept
between runs); the suite runs on a fresh PostgreSQL (SQLite for a suite without
PostgreSQL support) and Redis, with ``"strata"`` in ``INSTALLED_APPS``, Redis as the
default cache and ``STRATA = {"QUERY_CACHE": {"ENABLED": True}}``.

Tests that fail with Strata run again without it (``--without-strata``: the whole suite
does, for a full comparison and its wall time); those that pass there are
*strata-only failures*, and run once more with Strata, alone, to tell the reproducible
ones from those that need the tests before them (or a lost race). Each app's are grouped by root cause in
``.strata/suites/thirdparty-failures-<app>.txt``, with their tracebacks.

Exits non-zero on a strata-only failure not listed in ``tests/suites/thirdparty_known.toml``,
on a run whose query cache never answered a query (zero hits proves nothing), or on a
suite that did not report its tests.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.suites.outcomes import group_by_cause, strata_only
from tests.suites.sdist import REPO, suites_dir, unpacked_sdist
from tests.suites.suite_run import Run, run_suite
from tests.suites.thirdparty_apps import APPS, App, rerun_label
from tests.suites.venvs import strata_wheel, suite_venv

__all__ = ["main", "Report", "KNOWN"]

KNOWN = REPO / "tests" / "suites" / "thirdparty_known.toml"
"""Strata-only failures that are understood: ``[app]`` tables of ``"test id" = "why"``."""

FEW_HITS = 20
"""Fewer hits than this are said to prove little (zero fails the run)."""

RERUN_LIMIT = 400
"""More failing tests than this run the whole suite without Strata instead of a list."""


@dataclass
class Report:
    """One app's runs and what they showed."""

    app: App
    database: str
    setup_seconds: float = 0.0
    with_strata: Run | None = None
    without: Run | None = None
    strata_only: list[str] = field(default_factory=list)
    not_reproduced: list[str] = field(default_factory=list)
    """Strata-only failures that passed when run again alone, with Strata too."""
    unknown: list[str] = field(default_factory=list)
    known_passing: list[str] = field(default_factory=list)
    """Listed in the known-failures file, yet not a strata-only failure this time."""
    skipped: str = ""
    """Why the suite did not run on this database."""
    problem: str = ""
    """Why the suite proved nothing (did not run, no tests reported, zero hits)."""


def main(argv: list[str] | None = None) -> int:
    """Run the suites, print a table per app, and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.suites.thirdparty")
    parser.add_argument("apps", nargs="*", metavar="APP", help=f"default: {' '.join(APPS)}")
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument(
        "--without-strata",
        action="store_true",
        help="also run every suite in full without Strata (else only its failing tests)",
    )
    args = parser.parse_args(argv)
    unknown_apps = [name for name in args.apps if name not in APPS]
    if unknown_apps:
        parser.error(f"unknown app {', '.join(unknown_apps)} (known: {', '.join(APPS)})")
    known = tomllib.loads(KNOWN.read_text()) if KNOWN.exists() else {}
    django = importlib.metadata.version("django")
    started = time.monotonic()
    wheel = strata_wheel()
    print(f"Strata wheel {wheel.name} ({time.monotonic() - started:.1f}s)", flush=True)
    reports = []
    for name in args.apps or list(APPS):
        report = run_app(APPS[name], args.database, django, wheel, args.without_strata)
        report.unknown = [test for test in report.strata_only if test not in known.get(name, {})]
        report.known_passing = sorted(set(known.get(name, {})) - set(report.strata_only))
        write_failures(report)
        print_report(report)
        reports.append(report)
    print_table(reports, time.monotonic() - started)
    write_summary(reports)
    return 1 if any(report.unknown or report.problem for report in reports) else 0


def run_app(app: App, database: str, django: str, wheel: Path, full_baseline: bool) -> Report:
    """Install, run with Strata, find out which failures are Strata's."""
    report = Report(app, database if app.postgres else "sqlite")
    print(f"\n== {app.name} {app.version} on {report.database}", flush=True)
    if report.database == "sqlite" and not app.sqlite:
        report.skipped = "its suite needs PostgreSQL"
        print(f"   skipped: {report.skipped}")
        return report
    started = time.monotonic()
    try:
        requirements = [app.requirement, "tblib>=3", *app.requirements]
        python = suite_venv(app.name, django, requirements, wheel)
        if app.tests_in_sdist:
            source = unpacked_sdist(app.project, app.version)
        else:
            source = suites_dir() / "work" / app.name
            source.mkdir(parents=True, exist_ok=True)
    except Exception as exc:  # a suite that cannot even install is a result too
        report.problem = f"setup failed: {exc}"
        return report
    finally:
        report.setup_seconds = time.monotonic() - started

    def run(strata: bool, targets: tuple[str, ...], tag: str = "") -> Run:
        result = run_suite(app, python, source, report.database, strata, targets, tag)
        label = f"{'with Strata' if strata else 'without'}{' (' + tag + ')' if tag else ''}:"
        print(f"   {label:<22} {_counts(result)}", flush=True)
        return result

    report.with_strata = run(True, app.targets)
    if full_baseline:
        report.without = run(False, app.targets)
    report.strata_only = _strata_only(report, run)
    if report.with_strata.timed_out:
        report.problem = f"timed out after {app.timeout}s (see {report.with_strata.log})"
    elif not report.with_strata.outcomes:
        report.problem = f"no test reported an outcome (see {report.with_strata.log})"
    elif app.runner == "pytest" and (report.with_strata.returncode or 0) > 1:
        # 2 interrupted, 3 internal error, 4 usage: some tests may not have run.
        code = report.with_strata.returncode
        report.problem = f"pytest stopped with status {code} (see {report.with_strata.log})"
    elif report.with_strata.stats["hit"] == 0:
        report.problem = "the query cache never hit: the run proved nothing"
    return report


def _strata_only(report: Report, run: Callable[..., Run]) -> list[str]:
    """The tests that failed with Strata and did not fail without it.

    Without a full run without Strata, the failing tests run again without Strata; those
    that pass there run again with Strata. One that fails in neither rerun failed
    because of what ran before it, or by chance (a race): it still counts, marked *not
    reproduced alone*; a full run without Strata (``--without-strata``) decides.
    """
    failed = report.with_strata.outcomes
    if report.without is not None:
        return strata_only(failed, report.without.outcomes)
    failing = [test for test, outcome in failed.items() if outcome.failing]
    if not failing:
        return []
    if len(failing) > RERUN_LIMIT:
        report.without = run(False, report.app.targets)
        return strata_only(failed, report.without.outcomes)
    plain = run(False, _labels(report.app, failing), "rerun")
    candidates = strata_only(failed, plain.outcomes)
    if candidates:
        again = run(True, _labels(report.app, candidates), "rerun").outcomes
        report.not_reproduced = [t for t in candidates if not (t in again and again[t].failing)]
    return candidates


def _labels(app: App, tests: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(rerun_label(app, test) for test in tests))


def _counts(run: Run) -> str:
    text = (
        f"{len(run.outcomes)} tests, {run.count('passed')} passed, "
        f"{run.count('skipped', 'xfail')} skipped, {run.count('failed', 'error', 'xpass')} failed "
        f"in {run.seconds:.0f}s"
    )
    if run.strata:
        bypassed = sum(count for key, count in run.stats.items() if key.startswith("bypass:"))
        text += (
            f"; hit {run.stats['hit']}, miss {run.stats['miss']}, store {run.stats['store']}, "
            f"bypass {bypassed}, error {run.stats['error']}"
        )
    return f"{text}\n{'':25} log {run.log}"


def failures_path(app: App) -> Path:
    """Where the strata-only failures of ``app`` are written in full."""
    return suites_dir() / f"thirdparty-failures-{app.name}.txt"


def write_failures(report: Report) -> None:
    """Every strata-only failure of the app, grouped by root cause, with its traceback."""
    path = failures_path(report.app)
    run = report.with_strata
    lines = [f"{report.app.project} {report.app.version} on {report.database}", ""]
    if run is None or not report.strata_only:
        lines.append(report.problem or report.skipped or "No strata-only failures.")
        path.write_text("\n".join(lines) + "\n")
        return
    failures = {test: run.outcomes[test] for test in report.strata_only}
    groups = group_by_cause(failures)
    if report.not_reproduced:
        lines += [
            "Marked (not reproduced alone): failed in the full run with Strata, passed when",
            "run again alone, with and without Strata: what an earlier test left in the",
            "cache, or a race. --without-strata runs the whole suite without Strata to tell.",
            "",
        ]
    for number, (cause, tests) in enumerate(groups, 1):
        lines += [
            f"## Cause {number}: {len(tests)} tests",
            f"{cause.exception}: {cause.message}",
            f"raised in {_where(cause.strata_frame)}; first test's frame {cause.test_frame}",
            *(f"  {test}{_order(report, test)}" for test in tests),
            "",
        ]
    for number, (_cause, tests) in enumerate(groups, 1):
        for test in tests:
            lines += [f"=== cause {number}: {test}", failures[test].detail.rstrip(), ""]
    path.write_text("\n".join(lines) + "\n")


def print_report(report: Report) -> None:
    """The causes of one app's strata-only failures, a few example tests each."""
    if report.problem:
        print(f"   PROBLEM: {report.problem}")
    if not report.strata_only:
        return
    run = report.with_strata
    failures = {test: run.outcomes[test] for test in report.strata_only}
    print(f"   {len(failures)} strata-only failures ({len(report.unknown)} not known):")
    for cause, tests in group_by_cause(failures):
        print(f"   {len(tests):5d}  {cause.exception}: {cause.message[:150]}")
        print(f"          raised in {_where(cause.strata_frame)}")
        for test in tests[:3]:
            print(f"          e.g. {test}{_order(report, test)}")
    print(f"   tracebacks: {failures_path(report.app)}")


def _where(strata_frame: str) -> str:
    return "no frame inside strata/" if strata_frame == "-" else strata_frame


def _order(report: Report, test: str) -> str:
    return " (not reproduced alone)" if test in report.not_reproduced else ""


def print_table(reports: list[Report], seconds: float) -> None:
    """One line per app: what ran, what failed only with Strata, what the cache did."""
    header = (
        "app",
        "version",
        "db",
        "run",
        "passed",
        "skipped",
        "failed",
        "strata-only",
        "hit/miss/store",
        "strata s",
        "plain s",
        "setup s",
    )
    rows = [header]
    for report in reports:
        run, plain = report.with_strata, report.without
        full = plain is not None and plain.targets == report.app.targets
        rows.append(
            (
                report.app.name,
                report.app.version,
                report.database,
                str(len(run.outcomes)) if run else "-",
                str(run.count("passed")) if run else "-",
                str(run.count("skipped", "xfail")) if run else "-",
                str(run.count("failed", "error", "xpass")) if run else "-",
                str(len(report.strata_only)),
                f"{run.stats['hit']}/{run.stats['miss']}/{run.stats['store']}" if run else "-",
                f"{run.seconds:.0f}" if run else "-",
                f"{plain.seconds:.0f}" if full else "-",
                f"{report.setup_seconds:.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print()
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(f"\ntotal {seconds:.0f}s; 'failed' counts every failure with Strata, 'plain s' is")
    print("the wall time of a full run without Strata (--without-strata).")
    for report in reports:
        run = report.with_strata
        if run and 0 < run.stats["hit"] < FEW_HITS:
            print(
                f"{report.app.name}: only {run.stats['hit']} hits: the suite reads what it "
                "wrote in the same transaction, which Strata does not cache; it proves little"
            )
        if report.known_passing:
            print(
                f"{report.app.name}: {len(report.known_passing)} entries of "
                f"{KNOWN.relative_to(REPO)} did not fail only with Strata this time"
            )
        if report.problem:
            print(f"{report.app.name}: {report.problem}")
        if report.skipped:
            print(f"{report.app.name}: skipped on {report.database}: {report.skipped}")
        if report.unknown:
            print(
                f"{report.app.name}: {len(report.unknown)} strata-only failures not in "
                f"{KNOWN.relative_to(REPO)} ({failures_path(report.app)})"
            )


def write_summary(reports: list[Report]) -> None:
    """``.strata/suites/thirdparty-summary.json``: the table's numbers, for tools."""
    summary = {}
    for report in reports:
        run, plain = report.with_strata, report.without
        summary[report.app.name] = {
            "project": report.app.project,
            "version": report.app.version,
            "database": report.database,
            "setup_seconds": round(report.setup_seconds, 1),
            "problem": report.problem,
            "strata_only": report.strata_only,
            "with_strata": _run_summary(run),
            "without_strata": _run_summary(plain),
        }
    path = suites_dir() / "thirdparty-summary.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")


def _run_summary(run: Run | None) -> dict | None:
    if run is None:
        return None
    return {
        "tests": len(run.outcomes),
        "passed": run.count("passed"),
        "skipped": run.count("skipped", "xfail"),
        "failed": run.count("failed", "error", "xpass"),
        "seconds": round(run.seconds, 1),
        "targets": list(run.targets),
        "stats": dict(run.stats),
        "timed_out": run.timed_out,
        "returncode": run.returncode,
    }


if __name__ == "__main__":
    sys.exit(main())
