"""Strata in a third-party app's test settings, and what the harness learns from the run.

Runs inside the suite's own virtualenv (``tests/suites/thirdparty.py`` puts this folder
on ``PYTHONPATH``), never in Strata's development one. Each app's settings wrapper
(``apps/<app>/strata_suite_settings.py``) imports the app's own test settings and calls
:func:`configure` on its module namespace, which reads what the harness exported:

``STRATA_SUITE_DATABASE_URL``  the started PostgreSQL (unset: the app's own SQLite)
``STRATA_SUITE_CACHE_URL``     the started Redis, a cache in both runs (the default one
                               unless the wrapper names another alias)
``STRATA_SUITE_STRATA``        ``1``: add Strata and its query cache, as a user would
``STRATA_SUITE_OUT``           where the run leaves ``results.jsonl`` and ``stats-<pid>.json``

Every process that ran queries writes its query-cache counters when it exits: the main
process at exit, and each forked worker of a parallel run (Django's ``--parallel``) from
a :mod:`multiprocessing` finalizer registered after the fork, minus what it inherited.
"""

from __future__ import annotations

import atexit
import json
import os
import unittest
from collections import Counter
from multiprocessing import util
from pathlib import Path
from typing import Any

__all__ = ["configure", "strata_on", "record", "RecordingResult"]


def strata_on() -> bool:
    """Whether this run has Strata (the harness runs each suite with and without)."""
    return os.environ.get("STRATA_SUITE_STRATA") == "1"


def configure(namespace: dict[str, Any], cache_alias: str = "default") -> None:
    """Give ``namespace`` (a settings module's globals) the started servers and Strata.

    Redis becomes the cache ``cache_alias`` in both runs, with and without Strata; Strata
    keeps its versions and results there (``STRATA['CACHE']``).
    """
    from strata import env

    url = os.environ.get("STRATA_SUITE_DATABASE_URL")
    if url:
        _use_database(namespace, url)
    caches = dict(namespace.get("CACHES") or {})
    caches[cache_alias] = env.cache_from_url(os.environ["STRATA_SUITE_CACHE_URL"])
    namespace["CACHES"] = caches
    if strata_on():
        namespace["INSTALLED_APPS"] = [*namespace["INSTALLED_APPS"], "strata"]
        namespace["STRATA"] = {"QUERY_CACHE": {"ENABLED": True}}
        if cache_alias != "default":
            namespace["STRATA"]["CACHE"] = cache_alias
        _collect_stats()
    unittest.TextTestRunner.resultclass = RecordingResult


def _use_database(namespace: dict[str, Any], url: str) -> None:
    """Every alias on the started server; aliases other than default get a name of their own."""
    import dj_database_url

    server = dj_database_url.parse(url)
    databases = {}
    for alias, config in namespace["DATABASES"].items():
        config = {**config, **{key: server[key] for key in ("ENGINE", "HOST", "PORT", "USER")}}
        config["PASSWORD"] = server.get("PASSWORD", "")
        config["NAME"] = server["NAME"] if alias == "default" else f"{server['NAME']}_{alias}"
        config.pop("OPTIONS", None)  # the app's options are for its own server (MySQL...)
        databases[alias] = config
    namespace["DATABASES"] = databases


# -- query-cache counters, one file per process -----------------------------------------

_inherited: Counter[str] = Counter()


class _ForkHook:
    """Something :func:`multiprocessing.util.register_after_fork` can hold a weak reference to."""


_FORK_HOOK = _ForkHook()


def _collect_stats() -> None:
    atexit.register(_write_stats)
    util.register_after_fork(_FORK_HOOK, _after_fork)


def _counters() -> Counter[str]:
    from strata.querycache.stats import stats

    return stats


def _after_fork(_hook: _ForkHook) -> None:
    # A forked worker starts with its parent's counts, which the parent writes itself.
    _inherited.clear()
    _inherited.update(_counters())
    util.Finalize(None, _write_stats, exitpriority=100)


def _write_stats() -> None:
    out = os.environ.get("STRATA_SUITE_OUT")
    if not out:
        return
    counts = Counter(_counters())
    counts.subtract(_inherited)
    path = Path(out) / f"stats-{os.getpid()}.json"
    path.write_text(json.dumps({key: value for key, value in counts.items() if value}))


# -- per-test outcomes of a unittest (Django) runner ------------------------------------


def record(test_id: str, outcome: str, detail: str = "") -> None:
    """Append one test's outcome to ``$STRATA_SUITE_OUT/results.jsonl``."""
    out = os.environ.get("STRATA_SUITE_OUT")
    if not out:
        return
    line = json.dumps({"id": test_id, "outcome": outcome, "detail": detail})
    with open(Path(out) / "results.jsonl", "a", encoding="utf-8") as results:
        results.write(line + "\n")


class RecordingResult(unittest.TextTestResult):
    """A text result that also records every outcome (Django's runner uses it unchanged).

    In a parallel run the workers' results are replayed onto this one in the main
    process, so it sees every test.
    """

    def addSuccess(self, test):  # noqa: N802 (unittest's names)
        super().addSuccess(test)
        record(test.id(), "passed")

    def addFailure(self, test, err):  # noqa: N802
        super().addFailure(test, err)
        record(test.id(), "failed", self._exc_info_to_string(err, test))

    def addError(self, test, err):  # noqa: N802
        super().addError(test, err)
        record(test.id(), "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):  # noqa: N802
        super().addSkip(test, reason)
        record(test.id(), "skipped", reason)

    def addExpectedFailure(self, test, err):  # noqa: N802
        super().addExpectedFailure(test, err)
        record(test.id(), "xfail")

    def addUnexpectedSuccess(self, test):  # noqa: N802
        super().addUnexpectedSuccess(test)
        record(test.id(), "xpass")

    def addSubTest(self, test, subtest, err):  # noqa: N802
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            detail = f"{subtest}\n{self._exc_info_to_string(err, test)}"
            record(test.id(), "failed" if failed else "error", detail)
