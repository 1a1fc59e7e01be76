"""Django's own test suite with Strata's query cache on: what fails because of Strata.

    python -m tests.suites.django_suite --database sqlite|postgres [--parallel 2]
        [--apps queries lookup ...] [--without-strata] [--json PATH] [--timeout 1500]

Runs the ORM apps of the installed Django's own tests (from its sdist) with ``strata`` in
the suite's installed apps, ``STRATA = {"QUERY_CACHE": {"ENABLED": True}}`` and Django's ``RedisCache``
on a real Redis, on SQLite (in memory) or a real PostgreSQL. Every test that fails is run
again without Strata: one that fails there too is the environment's, the others are
Strata's. Exits non-zero when a Strata-only failure is not listed in
``django_known.toml``, or when the query cache answered no query at all (such a run tests
nothing). ``--without-strata`` runs the same tests without Strata (a baseline).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import django

from tests.suites.sdist import REPO, suites_dir, unpacked_sdist
from tests.suites.services import running_services
from tests.suites.suite_run import run_logged

__all__ = ["DEFAULT_APPS", "Run", "main", "run_django_tests"]

DEFAULT_APPS = (
    "queries",
    "aggregation",
    "aggregation_regress",
    "lookup",
    "expressions",
    "expressions_case",
    "expressions_window",
    "update",
    "delete",
    "delete_regress",
    "many_to_one",
    "many_to_many",
    "m2m_through",
    "one_to_one",
    "prefetch_related",
    "select_related",
    "select_related_regress",
    "transactions",
    "transaction_hooks",
    "bulk_create",
    "get_or_create",
    "raw_query",
    "annotations",
    "ordering",
    "model_inheritance",
    "model_inheritance_regress",
    "proxy_models",
    "defer",
    "defer_regress",
    "fixtures",
    "fixtures_regress",
    "generic_relations",
    "generic_relations_regress",
    "multiple_database",
    "composite_pk",
    "db_functions",
    "select_for_update",
    "migrations",
    "migration_test_data_persistence",
    "schema",
    "save_delete_hooks",
    "basic",
    "model_fields",
    "custom_managers",
    "null_fk",
    "distinct_on_fields",
    "backends",
    "filtered_relation",
    "update_only_fields",
    "force_insert_update",
    "from_db_value",
    "queryset_pickle",
    "string_lookup",
    "reverse_lookup",
    "nested_foreign_keys",
    "known_related_objects",
    "foreign_object",
    "or_lookups",
    "dates",
    "datetimes",
    "extra_regress",
    "custom_lookups",
    "custom_pk",
    "many_to_one_null",
    "get_earliest_or_latest",
    "model_formsets",
)
"""Django's test apps that exercise the ORM (those missing from a release are dropped)."""

KNOWN = Path(__file__).with_name("django_known.toml")
SETTINGS = "tests.suites.django_settings"
FAILED = ("ERROR", "FAIL", "unexpected success")
_SEVERITY = ("ok", "skipped", "expected failure", "unexpected success", "FAIL", "ERROR")
_STRATA_DIR = str(REPO / "strata") + os.sep
_PASS_THROUGH = {
    "execute_sql",
    "update_execute_sql",
    "update_execute_returning_sql",
    "insert_execute_sql",
    "execute",
    "executemany",
    "_bypass",
    "_read",
    "read",
}
"""Strata's compiler and cursor wrappers and read path: they hand statements on to Django."""


@dataclass
class Run:
    """One run of ``runtests.py``: each test's outcome, per-class times, cache counts."""

    outcomes: dict[str, str] = field(default_factory=dict)
    """Test id (a subtest's or a set-up's own id) -> worst outcome."""
    labels: dict[str, str] = field(default_factory=dict)
    """Test id -> the label that runs it again (a subtest's test, a set-up's class)."""
    details: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Test id -> tracebacks (or skip reasons)."""
    class_seconds: dict[str, float] = field(default_factory=dict)
    class_cpu: dict[str, float] = field(default_factory=dict)
    stats: Counter = field(default_factory=Counter)
    strata_log: list[dict] = field(default_factory=list)
    """What Strata logged at WARNING and above, and its faults (hidden by falling back)."""
    tests_run: int = 0
    finished: bool = False
    returncode: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """CPU time of runtests.py and its workers (less sensitive to a busy machine)."""
    setup_seconds: float | None = None
    log: Path | None = None

    def failed(self) -> list[str]:
        """Ids of the tests that failed or errored (or succeeded unexpectedly)."""
        return sorted(test_id for test_id, outcome in self.outcomes.items() if outcome in FAILED)

    def count(self, outcome: str) -> int:
        """How many tests ended with ``outcome``."""
        return sum(1 for value in self.outcomes.values() if value == outcome)

    def app_seconds(self, cpu: bool = False) -> dict[str, float]:
        """Worker seconds (or worker CPU seconds) per test app (its classes' set-up and
        tests), slowest first."""
        apps: Counter = Counter()
        for name, seconds in (self.class_cpu if cpu else self.class_seconds).items():
            apps[name.split(".")[0]] += seconds
        return {app: round(seconds, 1) for app, seconds in apps.most_common()}


def runtests_with_strata(tests_dir: Path) -> Path:
    """A copy of ``runtests.py`` beside it whose ``ALWAYS_INSTALLED_APPS`` ends with strata."""
    source = (tests_dir / "runtests.py").read_text()
    patched, count = re.subn(
        r"(\nALWAYS_INSTALLED_APPS = \[\n(?:    .*\n)*?)(\]\n)",
        lambda match: match.group(1) + '    "strata",\n' + match.group(2),
        source,
        count=1,
    )
    if count != 1 or '    "strata",\n]' not in patched:
        raise RuntimeError(f"no ALWAYS_INSTALLED_APPS list to add strata to in {tests_dir}")
    target = tests_dir / "runtests_with_strata.py"
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(patched)
    temporary.replace(target)
    return target


def run_django_tests(
    tests_dir: Path,
    labels: list[str],
    *,
    with_strata: bool,
    database_url: str,
    cache_url: str,
    out_dir: Path,
    parallel: int,
    timeout: float,
) -> Run:
    """Run ``labels`` with Django's ``runtests.py`` (``-v 2``) and read what it recorded."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes_file = out_dir / "outcomes.jsonl"
    outcomes_file.unlink(missing_ok=True)
    script = runtests_with_strata(tests_dir) if with_strata else tests_dir / "runtests.py"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        STRATA_SUITE_DATABASE_URL=database_url,
        STRATA_SUITE_CACHE_URL=cache_url,
        STRATA_SUITE_OUTCOMES=str(outcomes_file),
    )
    for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CACHE_URL"):
        env.pop(name, None)
    argv = [sys.executable, str(script), "--settings", SETTINGS, "-v", "2", "--noinput"]
    argv += ["--parallel", str(parallel), "--timing", *labels]
    run = Run(log=out_dir / "log.txt")
    start = time.monotonic()
    cpu_start = _children_cpu()
    with open(run.log, "w") as log:
        run.returncode, run.timed_out = run_logged(argv, tests_dir, env, log, timeout, grace=15)
    run.seconds = time.monotonic() - start
    run.cpu_seconds = _children_cpu() - cpu_start
    _read_outcomes(run, outcomes_file)
    text = run.log.read_text(errors="replace")
    if match := re.search(r"^Total database setup took ([\d.]+)s", text, re.MULTILINE):
        run.setup_seconds = float(match.group(1))
    return run


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _read_outcomes(run: Run, path: Path) -> None:
    if not path.exists():
        return
    worker_stats: Counter = Counter()
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "test":
            test_id, outcome = record["id"], record["outcome"]
            previous = run.outcomes.get(test_id, "ok")
            if test_id not in run.outcomes or _SEVERITY.index(outcome) > _SEVERITY.index(previous):
                run.outcomes[test_id] = outcome
            run.labels[test_id] = record["label"]
            if record["detail"]:
                run.details[test_id].append(record["detail"])
        elif record["event"] == "class":
            name = record["class"]
            run.class_seconds[name] = run.class_seconds.get(name, 0.0) + record["seconds"]
            run.class_cpu[name] = run.class_cpu.get(name, 0.0) + record["cpu"]
            worker_stats.update(record["stats"])
        elif record["event"] == "strata-log":
            run.strata_log.append(record)
        elif record["event"] == "done":
            run.finished = True
            run.tests_run = record["tests_run"]
            run.stats.update(record["stats"])
    run.stats.update(worker_stats)
    if not run.finished:
        run.tests_run = len(run.outcomes)


def root_cause(traceback: str) -> tuple[str, str]:
    """The exception (its last line of type and message) and where Strata raised it.

    That is the deepest frame in strata/ that raised the exception itself or is not one of
    Strata's pass-through hooks (the compiler and cursor wrappers, the timing hooks); the
    last exception of a chain is searched first.
    """
    lines = traceback.splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
    exception = lines[-1] if lines else "?"
    if frames:
        for line in lines[frames[-1] + 1 :]:
            if line and not line.startswith(" "):
                exception = line
                break
    passed_through = False
    for section in reversed(traceback.split("\nTraceback (most recent call last):\n")):
        found = re.findall(r'  File "([^"]+)", line (\d+), in (\S+)', section)
        for position in range(len(found) - 1, -1, -1):
            path, line, function = found[position]
            if not path.startswith(_STRATA_DIR):
                continue
            hook = path.startswith(_STRATA_DIR + "timing" + os.sep) or function in _PASS_THROUGH
            if position == len(found) - 1 or not hook:
                return exception[:300], f"{os.path.relpath(path, REPO)}:{line} in {function}"
            passed_through = True
    where = "(only through Strata's hooks)" if passed_through else "(not in strata/)"
    return exception[:300], where


def _group_key(exception: str, frame: str) -> tuple[str, str]:
    """Failures raised in strata/ group by type and frame, others by their message's shape."""
    kind = exception.split(":", 1)[0]
    if frame.startswith("("):
        shape = re.sub(r"0x[0-9a-f]+|\d+", "N", exception.split(":", 1)[-1]).strip()
        return f"{kind}: {shape[:70]}", frame
    return kind, frame


def known_failures(version: str, database: str) -> dict[str, str]:
    """The understood Strata-only failures for this Django release and database.

    ``django_known.toml`` has a table per scope: ``[any]``, ``[sqlite]``, ``[postgres]``,
    ``["django-5.2"]``, ``["django-5.2-postgres"]``...; each maps a test id, or a class or
    module (all its tests), to the reason.
    """
    if not KNOWN.exists():
        return {}
    data = tomllib.loads(KNOWN.read_text())
    release = "django-" + ".".join(version.split(".")[:2])
    known: dict[str, str] = {}
    for scope in ("any", database, release, f"{release}-{database}"):
        known.update(data.get(scope, {}))
    return known


def _fails(run: Run, label: str) -> bool | None:
    """Whether ``label`` (a test, class or module) failed in ``run``; None if it did not run."""
    seen = [
        outcome
        for test_id, outcome in run.outcomes.items()
        if any(
            name == label or name.startswith(label + ".") or name.startswith(label + " ")
            for name in (test_id, run.labels[test_id])
        )
    ]
    return any(outcome in FAILED for outcome in seen) if seen else None


def _listed(known: dict[str, str], test_id: str, label: str) -> bool:
    """Whether ``known`` names the test, its label, or a class or module containing it."""
    return any(
        name == entry or name.startswith(entry + ".") or name.startswith(entry + " ")
        for entry in known
        for name in (test_id, label)
    )


def _covering_labels(labels: set[str]) -> list[str]:
    """The labels, without those another label (a class, a module) already runs."""
    kept: list[str] = []
    for label in sorted(labels, key=len):
        if not any(label.startswith(other + ".") for other in kept):
            kept.append(label)
    return sorted(kept)


def strata_source() -> dict[str, str]:
    """Which Strata was tested: the commit, and a digest of strata/ as it is on disk."""
    digest = hashlib.sha1()
    for path in sorted((REPO / "strata").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {"commit": commit, "sources_sha1": digest.hexdigest()[:12]}


def main(argv: list[str] | None = None) -> int:
    """Run the suite, re-run its failures without Strata, report; the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.suites.django_suite")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--apps", nargs="+", help="test apps (default: the ORM ones)")
    parser.add_argument("--without-strata", action="store_true", help="a baseline run")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--timeout", type=float, default=1500, help="seconds per runtests.py")
    args = parser.parse_args(argv)
    with_strata = not args.without_strata
    version = django.__version__
    tests_dir = unpacked_sdist("django", version) / "tests"
    wanted = args.apps or list(DEFAULT_APPS)
    apps = [app for app in wanted if (tests_dir / app).is_dir()]
    dropped = [app for app in wanted if app not in apps]
    name = f"django-{version}-{args.database}" + ("" if with_strata else "-without-strata")
    run_dir = suites_dir() / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    mode = "with Strata's query cache" if with_strata else "without Strata"
    print(f"Django {version} on {args.database} {mode}: {len(apps)} apps, log {run_dir}/main")
    if dropped:
        print(f"  not in this release: {' '.join(dropped)}")
    source = strata_source()
    started = time.monotonic()
    rerun = None
    with running_services(args.database, "redis") as services:
        common = dict(
            database_url=services.database_url if args.database == "postgres" else "sqlite://",
            cache_url=services.cache_url,
            parallel=args.parallel,
            timeout=args.timeout,
        )
        main_run = run_django_tests(
            tests_dir, apps, with_strata=with_strata, out_dir=run_dir / "main", **common
        )
        failed = main_run.failed()
        if with_strata and failed:
            labels = _covering_labels({main_run.labels[test_id] for test_id in failed})
            print(f"  re-running {len(labels)} failed labels without Strata")
            rerun = run_django_tests(
                tests_dir, labels, with_strata=False, out_dir=run_dir / "rerun", **common
            )
    wall = time.monotonic() - started
    summary = _summarize(
        main_run, rerun, with_strata, version, args.database, apps, dropped, wall, args.parallel
    )
    summary["strata_source"] = source
    failures_file = suites_dir() / (
        f"failures-{version}-{args.database}" + ("" if with_strata else "-without-strata") + ".txt"
    )
    _write_failures(failures_file, main_run, summary)
    summary["failures_file"] = str(failures_file)
    text = json.dumps(summary, indent=2)
    (run_dir / "summary.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    _print_table(summary)
    return 0 if summary["ok"] else 1


def _summarize(main_run, rerun, with_strata, version, database, apps, dropped, wall, parallel):
    failed = main_run.failed()
    environment, strata_only, unverified = [], [], []
    for test_id in failed:
        verdict = None if rerun is None else _fails(rerun, main_run.labels[test_id])
        if not with_strata or verdict:
            environment.append(test_id)
        elif verdict is None and with_strata:
            unverified.append(test_id)  # not run again (the re-run broke): counted as Strata's
            strata_only.append(test_id)
        else:
            strata_only.append(test_id)
    known = known_failures(version, database)
    new = [t for t in strata_only if not _listed(known, t, main_run.labels[t])]
    stats = main_run.stats
    bypasses = {k.split(":", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("bypass:")}
    groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for test_id in strata_only:
        exception, frame = root_cause(main_run.details[test_id][-1])
        groups[_group_key(exception, frame)].append((test_id, exception))
    logged: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for record in main_run.strata_log:
        exception, frame = root_cause(record["traceback"]) if record["traceback"] else ("", "")
        fault = re.search(r"fault while (.+?)(?:; the statement| \(already)", record["message"])
        message = f"fault while {fault.group(1)}" if fault else record["message"]
        message = re.sub(r"\d+", "N", message)[:160]
        logged[(message, exception.split(":", 1)[0], frame)].append(record["test"])
    problems = []
    if not main_run.finished:
        why = "timed out" if main_run.timed_out else f"exited {main_run.returncode}"
        problems.append(f"runtests.py {why} before finishing: see {main_run.log}")
    if with_strata and stats["hit"] == 0:
        problems.append("THE QUERY CACHE ANSWERED NO QUERY: this run tested nothing")
    if with_strata and new:
        problems.append(f"{len(new)} Strata-only failures are not in {KNOWN.name}")
    ran = re.findall(r"^Ran (\d+) tests? in", main_run.log.read_text(errors="replace"), re.M)
    if ran and int(ran[-1]) != main_run.tests_run:
        problems.append(f"runtests.py says it ran {ran[-1]} tests, {main_run.tests_run} recorded")
    return {
        "django": version,
        "database": database,
        "with_strata": with_strata,
        "parallel": parallel,
        "apps": apps,
        "apps_not_in_release": dropped,
        "tests_run": main_run.tests_run,
        "passed": main_run.count("ok"),
        "skipped": main_run.count("skipped"),
        "expected_failures": main_run.count("expected failure"),
        "failed": len(failed),
        "environment": environment,
        "strata_only": strata_only,
        "strata_only_unverified": unverified,
        "strata_only_known": [t for t in strata_only if t not in new],
        "strata_only_new": new,
        "groups": [
            {
                "exception": key[0],
                "strata_frame": key[1],
                "count": len(found),
                "example": found[0][1],
                "tests": [test_id for test_id, _ in found],
            }
            for key, found in sorted(groups.items(), key=lambda item: -len(item[1]))
        ],
        "strata_log": [
            {
                "message": key[0],
                "exception": key[1],
                "strata_frame": key[2],
                "count": len(tests),
                "tests": sorted(set(tests)),
            }
            for key, tests in sorted(logged.items(), key=lambda item: -len(item[1]))
        ],
        "cache": {
            "hit": stats["hit"],
            "fault": stats["fault"],
            "miss": stats["miss"],
            "store": stats["store"],
            "bypass": sum(bypasses.values()),
            "error": stats["error"],
            "invalidate": stats["invalidate"],
            "bypass_reasons": bypasses,
        },
        "seconds": {
            "wall": round(wall, 1),
            "main_run": round(main_run.seconds, 1),
            "rerun": round(rerun.seconds, 1) if rerun else 0.0,
            "main_run_cpu": round(main_run.cpu_seconds, 1),
            "database_setup": main_run.setup_seconds,
            "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
        },
        "app_worker_seconds": main_run.app_seconds(),
        "app_worker_cpu_seconds": main_run.app_seconds(cpu=True),
        "log": str(main_run.log),
        "rerun_log": str(rerun.log) if rerun else None,
        "problems": problems,
        "ok": not problems,
    }


def _write_failures(path: Path, run: Run, summary: dict) -> None:
    """Every failure with its tracebacks: Strata-only ones grouped by root cause first."""
    lines = [
        f"Django {summary['django']} on {summary['database']}"
        + (" with Strata" if summary["with_strata"] else " without Strata")
        + " (strata/ at commit {commit}, sources {sources_sha1})".format(
            **summary["strata_source"]
        ),
        f"{len(summary['strata_only'])} Strata-only failures, "
        f"{len(summary['environment'])} failing without Strata too",
        "",
    ]
    for group in summary["groups"]:
        lines.append(f"== {group['count']} x {group['exception']} at {group['strata_frame']}")
        lines.append(f"   e.g. {group['example']}")
        lines.extend(f"   {test_id}" for test_id in group["tests"])
    for entry in summary["strata_log"]:
        lines.append(f"== logged {entry['count']} x: {entry['message']}")
        lines.append(f"   {entry['exception']} at {entry['strata_frame']}")
        lines.extend(f"   during {test_id}" for test_id in entry["tests"])
    lines.append("")
    sections = [("STRATA-ONLY", summary["strata_only"]), ("ENVIRONMENT", summary["environment"])]
    for title, ids in sections:
        for test_id in ids:
            lines += ["=" * 78, f"{title} {run.outcomes[test_id]}: {test_id}", "-" * 78]
            lines.extend(detail.rstrip() for detail in run.details[test_id])
    for record in run.strata_log:
        lines += ["=" * 78, f"LOGGED BY STRATA during {record['test']}", "-" * 78]
        lines += [record["message"], record["traceback"].rstrip()]
    path.write_text("\n".join(lines) + "\n")


def _print_table(summary: dict) -> None:
    cache, seconds = summary["cache"], summary["seconds"]
    rows = [
        ("tests run", summary["tests_run"]),
        ("passed", summary["passed"]),
        ("skipped", f"{summary['skipped']} (+{summary['expected_failures']} expected failures)"),
        ("failures" + (" with Strata" if summary["with_strata"] else ""), summary["failed"]),
    ]
    if summary["with_strata"]:
        rows += [
            ("  environment", len(summary["environment"])),
            (
                "  Strata-only",
                f"{len(summary['strata_only'])} (known {len(summary['strata_only_known'])}, "
                f"new {len(summary['strata_only_new'])})",
            ),
            (
                "query cache",
                f"hits {cache['hit']}, misses {cache['miss']}, stores {cache['store']}, "
                f"bypasses {cache['bypass']}, errors {cache['error']}",
            ),
            ("Strata's faults", f"{cache['fault']} (hidden by falling back; logged below)"),
        ]
    rows.append(
        (
            "wall time",
            f"{seconds['wall']} s (tests {seconds['main_run']} s, CPU {seconds['main_run_cpu']} s;"
            f" re-run {seconds['rerun']} s; load {seconds['load_average_at_end'][0]})",
        )
    )
    slowest = list(summary["app_worker_seconds"].items())[:8]
    if slowest:
        rows.append(("slowest apps", ", ".join(f"{app} {s:.0f}s" for app, s in slowest)))
    for label, value in rows:
        print(f"  {label:<22} {value}")
    for group in summary["groups"][:15]:
        print(f"  {group['count']:>5} x {group['exception'][:60]}  at {group['strata_frame']}")
    for entry in summary["strata_log"][:10]:
        print(f"  {entry['count']:>5} x logged: {entry['message'][:70]}  {entry['strata_frame']}")
    print(f"  failures: {summary['failures_file']}")
    for problem in summary["problems"]:
        print(f"  !! {problem}")


if __name__ == "__main__":
    sys.exit(main())
