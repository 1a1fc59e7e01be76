"""A pytest plugin (``-p strata_suite_pytest``) that records every test's outcome.

The harness reads ``$STRATA_SUITE_OUT/results.jsonl``: one line per report that decides
an outcome, keyed by the node id that pytest accepts back on its command line.
"""

from __future__ import annotations

from strata_suite import record

__all__ = ["pytest_runtest_logreport"]


def pytest_runtest_logreport(report) -> None:
    """Record the call's outcome, or a setup or teardown that did not pass."""
    if hasattr(report, "wasxfail"):
        if report.when == "call" or report.skipped:
            record(report.nodeid, "xfail" if report.skipped else "xpass")
        return
    if report.when == "call":
        outcome = {"passed": "passed", "failed": "failed", "skipped": "skipped"}[report.outcome]
    elif report.failed:
        outcome = "error"
    elif report.skipped and report.when == "setup":
        outcome = "skipped"
    else:
        return
    detail = report.longreprtext if not report.passed else ""
    record(report.nodeid, outcome, detail)
