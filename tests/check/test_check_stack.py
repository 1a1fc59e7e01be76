"""`strata check --start` on the real stack: strata up started and stopped by the check,
a short schedule of faults, nothing stale beyond the purge window, nothing lost."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from strata.cli.main import cli
from strata.stack.process import pid_alive
from tests.helpers import free_base_port, make_run_dir, remove_run_dir, require_real_stack

pytestmark = pytest.mark.stack

ALL_FAULTS = [
    "app-kill",
    "app-hang",
    "cache-restart",
    "version-flush",
    "db-down",
    "accelerator-down",
    "purge-fail",
    "purger-kill",
    "writer-kill",
]


def test_a_short_check_with_faults_finds_nothing_stale_and_nothing_lost(tmp_path):
    require_real_stack()
    run_dir = make_run_dir()
    report = tmp_path / "check.json"
    try:
        result = CliRunner().invoke(
            cli,
            [
                "check",
                "--start",
                "--run-dir",
                str(run_dir),
                "--port",
                str(free_base_port()),
                "--seconds",
                "6",
                "--faults",
                "all",
                "--phase-seconds",
                "6",
                "--out",
                str(report),
            ],
        )
        data = json.loads(report.read_text()) if report.exists() else None
        assert result.exit_code == 0, result.output + json.dumps(data and data["verdict"])
    finally:
        remove_run_dir(run_dir)

    phases = {phase["name"]: phase for phase in data["phases"]}
    assert list(phases) == ["baseline", *ALL_FAULTS, "final"]
    totals = data["totals"]
    assert totals["beyond_window"] == 0 and totals["lost"] == 0 and totals["phantoms"] == 0
    assert data["verdict"] == {**data["verdict"], "ok": True, "unverified": [], "stuck": None}
    assert totals["reads_checked"] > 300 and totals["writes_acked"] > 20
    baseline = phases["baseline"]
    assert baseline["reads_5xx"] == 0 and baseline["writes_5xx"] == 0, baseline["failed_writes"]

    # Each fault was really applied, and the stack came back from it.
    killed = phases["app-kill"]["details"]
    assert killed["new_pid"] != killed["pid"] and not pid_alive(killed["pid"])
    restarted = phases["cache-restart"]["details"]
    assert restarted["program"] == "redis" and restarted["new_pid"] != restarted["pid"]
    switched = phases["purge-fail"]["details"]
    assert switched["restored"] is True and switched["failing_vcl"] != switched["original_vcl"]
    purger = phases["purger-kill"]["details"]
    assert purger["program"] == "purger" and purger["new_pid"] != purger["pid"]
    assert phases["writer-kill"]["details"]["stopped_killing"] is True
    # The demo's note is written by `manage.py edit_article` with only the database and
    # the cache: under writer-kill it SIGKILLs itself after its commit, and stays fresh.
    assert totals["writes_command"] > 0 and phases["writer-kill"]["writes_killed"] > 0
    for name in ALL_FAULTS:
        assert phases[name]["recovery_seconds"] is not None, phases[name]
    # Writes went on in every phase, and the purge windows were measured.
    assert all(
        phases[name]["writes_acked"] > 0 for name in ("baseline", "app-kill", "cache-restart")
    )
    assert phases["baseline"]["purge_window"]["writes"] > 0
    # The hit ratios during the run, with where they were read (a fault that restarted a
    # program reset its counters: its ratio may be unknown).
    ratios = data["hit_ratios"]
    assert ratios["accelerator"] and ratios["page_cache"]
    assert all(e["source"].endswith("/-/metrics") for e in ratios["page_cache"] if e["up"])
    assert "read from " in result.output
    # The stack that --start started is gone, programs and all.
    assert not pid_alive(data["stack"]["strata_up_pid"])
    assert not any(pid_alive(p["pid"]) for p in data["stack"]["programs"].values())
