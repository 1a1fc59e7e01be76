"""The table and the JSON report, from a hand-built run."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from strata.check.freshness import FinalView, check
from strata.check.history import ACKED, History, Phase, Read, Write
from strata.check.report import report_data, summary_table, verdict_lines, write_report
from strata.check.run import CheckPlan, CheckResult
from strata.check.scenario import demo_scenario


def result(tmp_path: Path, interrupted: bool = False) -> CheckResult:
    phases = [
        Phase("baseline", 100.0, end=110.0),
        Phase(
            "db-down",
            110.0,
            end=120.0,
            fault="db-down",
            applied=110.0,
            healed=115.0,
            recovered=None if interrupted else 115.4,
            details={"program": "postgres", "pid": 1, "new_pid": 2},
        ),
        Phase("final", 120.0, end=125.0),
    ]
    writes = [Write(0, "title1", 1, "/f/", 101.0, 101.1, 302, ACKED)]
    reads = [
        Read(1, "/a/", "anon", 101.05, 101.15, 200, {}, ("title1",), "HIT", "page-hit", "app1"),
        Read(1, "/a/", "anon", 104.0, 104.1, 200, {}, ("title1",), "HIT", "page-hit", "app1"),
        Read(1, "/", "anon", 111.0, 111.1, 503, {}, (), "PASS", "bypass: status 503", "app1"),
        Read(
            -1,
            "/a/",
            "final",
            121.0,
            121.1,
            200,
            {"title1": (1,)},
            ("title1",),
            "MISS",
            None,
            None,
            kind="final",
        ),
    ]
    history = History(reads=reads, writes=writes)
    verdict = check(history, phases, 2.5, {"title": "last"}, [FinalView("title1", "/a/", (1,))])
    return CheckResult(
        plan=CheckPlan(demo_scenario(), ["db-down"]),
        run_id="abcd12",
        work_dir=tmp_path,
        started_at="2026-01-01T00:00:00+00:00",
        target={"run_dir": str(tmp_path)},
        objects=[{"slug": "a", "pk": "1", "author": "x"}],
        phases=phases,
        skipped=[("purge-fail", "no Varnish with a work_dir in state.json")],
        verdict=verdict,
        history=history,
        cpu={"baseline": 0.5},
        interrupted=interrupted,
    )


def rendered(table) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


def test_the_table_shows_each_phase_with_its_findings_and_recovery(tmp_path):
    run = result(tmp_path)
    text = rendered(summary_table(run))
    assert "baseline" in text and "db-down" in text and "final" in text
    assert "0.4 s" in text  # recovered 0.4 s after healing
    lines = verdict_lines(run)
    assert any("stale read(s) beyond the 2.5 s purge window" in line for line in lines)
    assert any("db-down: answers 1 × 503; 1 of 1 anonymous reads" in line for line in lines)
    assert any("purge-fail skipped" in line for line in lines)
    assert run.exit_code == 1


def test_an_interrupted_run_says_so_and_exits_130(tmp_path):
    run = result(tmp_path, interrupted=True)
    assert "interrupted" in rendered(summary_table(run))
    assert run.exit_code == 130


def test_the_json_report_has_the_phases_the_findings_and_the_plan(tmp_path):
    data = report_data(result(tmp_path), argv=["strata", "check"])
    path = write_report(data, tmp_path / "out" / "check.json")
    loaded = json.loads(path.read_text())
    assert [p["name"] for p in loaded["phases"]] == ["baseline", "db-down", "final"]
    baseline = loaded["phases"][0]
    assert baseline["start"] == 0.0 and baseline["stale"]["1s"] == 1
    assert baseline["beyond_window"] == 1 and baseline["machine_cpu_busy"] == 0.5
    assert loaded["phases"][1]["recovery_seconds"] == 0.4
    assert loaded["verdict"]["ok"] is False and loaded["verdict"]["beyond_window"] == 1
    (stale,) = loaded["stale_reads"]
    assert stale["key"] == "title1" and stale["age_ms"] == 2900.0 and stale["start"] == 4.0
    assert loaded["plan"]["faults"] == ["db-down"] and loaded["command"] == ["strata", "check"]
    assert loaded["skipped"] == [
        {"fault": "purge-fail", "reason": "no Varnish with a work_dir in state.json"}
    ]


def test_the_report_gives_the_hit_ratios_during_the_run_and_where_they_were_read(tmp_path):
    ratios = {
        "seconds": 30.0,
        "accelerator": [
            {
                "name": "varnish1",
                "up": True,
                "hit_ratio": 0.9,
                "hits": 900,
                "lookups": 1000,
                "requests": 1200,
                "source": "varnishstat -n /run/varnish1",
            }
        ],
        "page_cache": [],
        "query_cache": [],
    }
    run = result(tmp_path)
    data = report_data(run, argv=["strata", "check"], hit_ratios=ratios)
    loaded = json.loads(write_report(data, tmp_path / "check.json").read_text())
    assert loaded["hit_ratios"] == ratios
    lines = verdict_lines(run, ratios)
    assert "accelerator hits: varnish1 90.0% (900 of 1,000)" in lines
    assert "read from varnishstat -n /run/varnish1" in lines
    assert report_data(run)["hit_ratios"] is None
