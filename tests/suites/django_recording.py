"""What a run of Django's own suite records: outcomes, Strata's faults, the cache's counts.

``runtests.py`` builds its runner from ``settings.TEST_RUNNER``, which
:mod:`tests.suites.django_settings` names :class:`RecordingRunner`: Django's runner, whose
result also appends one JSON line per outcome to the file ``$STRATA_SUITE_OUTCOMES``
(one line at a time, so a run stopped by its timeout keeps what it recorded).

Strata's hooks turn their own exceptions into a log record and fall back to plain Django
(``strata.querycache.faults``): the test passes, the bug stays. What Strata logs at WARNING
and above, and every fault, is kept with the id of the test that was running.

With ``--parallel``, each test class runs in a worker process, which sends its events back
when the class is done. The workers end with ``os._exit`` (no ``atexit``), so each one adds
an event of its own to every class it ran: the class's wall and CPU time, what its query
cache counted meanwhile (``strata.querycache.stats``) and what Strata logged. The parent
adds its own counts (database set-up, tests it ran itself) at the end.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import traceback
import unittest

from django.test.runner import (
    DiscoverRunner,
    ParallelTestSuite,
    RemoteTestResult,
    RemoteTestRunner,
    _run_subsuite,
)

__all__ = ["OUTCOMES_ENV", "RecordingResult", "RecordingRunner"]

OUTCOMES_ENV = "STRATA_SUITE_OUTCOMES"


def _query_cache_stats() -> dict[str, int]:
    from strata.querycache.stats import stats

    return dict(stats)


class _StrataLog(logging.Handler):
    """Keeps Strata's warnings, errors and faults, each with the test that was running."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[dict] = []
        self.current = "(before the first test)"

    def install(self) -> None:
        logger = logging.getLogger("strata")
        if self not in logger.handlers:
            logger.addHandler(self)
            logger.setLevel(logging.DEBUG)  # repeated faults are logged at DEBUG

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno < logging.WARNING and "fault while" not in message:
            return
        trace = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
        self.records.append(
            {
                "event": "strata-log",
                "test": self.current,
                "level": record.levelname,
                "message": message,
                "traceback": trace,
            }
        )

    def take(self) -> list[dict]:
        records, self.records = self.records, []
        return records


_strata_log = _StrataLog()


class _TrackingRemoteResult(RemoteTestResult):
    def startTest(self, test):
        _strata_log.current = test.id()
        super().startTest(test)


class _TrackingRemoteRunner(RemoteTestRunner):
    resultclass = _TrackingRemoteResult


def _run_subsuite_measured(args):
    """Django's worker function, plus an event with the class's time, counts and logs."""
    _strata_log.install()
    _strata_log.take()
    subsuite = args[2]
    first = next(iter(subsuite), None)
    _strata_log.current = f"{type(first).__module__}.{type(first).__qualname__} (class set-up)"
    before = _query_cache_stats()
    start, cpu_start = time.monotonic(), time.process_time()
    index, events = _run_subsuite(args)
    seconds, cpu = time.monotonic() - start, time.process_time() - cpu_start
    counts = {
        key: value - before.get(key, 0)
        for key, value in _query_cache_stats().items()
        if value != before.get(key, 0)
    }
    events.append(("addClassMeasure", 0, seconds, cpu, counts, _strata_log.take()))
    return index, events


class MeasuredParallelTestSuite(ParallelTestSuite):
    """Django's parallel suite whose workers also report time, counts and logs per class."""

    run_subsuite = _run_subsuite_measured
    runner_class = _TrackingRemoteRunner


class RecordingResult(unittest.TextTestResult):
    """Django's text result that also writes each outcome to ``$STRATA_SUITE_OUTCOMES``."""

    def _write(self, *records: dict) -> None:
        path = os.environ.get(OUTCOMES_ENV)
        if path and records:
            with open(path, "a", encoding="utf-8") as out:
                out.writelines(json.dumps(record) + "\n" for record in records)

    def _record(self, test, outcome: str, detail: str | None = None, parent=None) -> None:
        if isinstance(test, unittest.suite._ErrorHolder):
            # "setUpClass (app.tests.SomeTests)": the class or module is what re-runs.
            test_id = test.description
            match = re.search(r"\(([\w.]+)\)$", test_id)
            label = match.group(1) if match else test_id
        else:
            # A subtest's id names unittest's sentinel object, at a new address every run.
            test_id = re.sub(r" \[<object object at 0x[0-9a-f]+>\]", "", test.id())
            label = parent.id() if parent is not None else test_id
        if label.startswith("unittest.loader._FailedTest."):
            label = label.removeprefix("unittest.loader._FailedTest.")
        self._write(
            {"event": "test", "id": test_id, "label": label, "outcome": outcome, "detail": detail}
        )

    def startTest(self, test):
        _strata_log.current = test.id()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        self._write(*_strata_log.take())  # tests this process ran itself

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "FAIL", self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "ERROR", self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", str(reason))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            outcome, detail = ("FAIL", self.failures) if failed else ("ERROR", self.errors)
            self._record(subtest, outcome, detail[-1][1], parent=test)

    def addClassMeasure(self, test, seconds: float, cpu: float, counts: dict, logs: list) -> None:
        """A worker ran ``test``'s class in ``seconds`` (``cpu`` of them its own CPU time);
        its query cache counted ``counts`` and Strata logged ``logs`` meanwhile."""
        cls = type(test)
        name = f"{cls.__module__}.{cls.__qualname__}"
        self._write(
            {"event": "class", "class": name, "seconds": seconds, "cpu": cpu, "stats": counts},
            *logs,
        )

    def stopTestRun(self):
        super().stopTestRun()
        self._write(
            *_strata_log.take(),
            {"event": "done", "tests_run": self.testsRun, "stats": _query_cache_stats()},
        )


class RecordingRunner(DiscoverRunner):
    """Django's test runner, recording outcomes, Strata's faults and the cache's counts."""

    parallel_test_suite = MeasuredParallelTestSuite

    def setup_test_environment(self, **kwargs):
        """Django's, and Strata's log kept (before the workers fork, so they have it too)."""
        super().setup_test_environment(**kwargs)
        _strata_log.install()

    def get_resultclass(self):
        """Django's result class for ``--debug-sql`` or ``--pdb``, else the recording one."""
        return super().get_resultclass() or RecordingResult
