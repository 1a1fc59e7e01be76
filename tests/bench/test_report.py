"""The report: a Rich table, a JSON file, and a chart as PNG and as a self-contained page."""

from __future__ import annotations

import json
import re
import sys

import pytest
from rich.console import Console

from strata.bench.load import LoadResult, PythonLoad
from strata.bench.report import COLD_NOTE, notes, summary_table, write_reports
from strata.bench.run import BenchPlan, BenchRun, TierRun
from strata.bench.tiers import TIERS
from tests.bench.conftest import endpoints_of
from tests.bench.fakestack import FakeStack
from tests.bench.test_breakdown import response

ACCELERATOR, PAGE, WARM, COLD = TIERS


def load(tier, answered, mismatches=None, latency_of="answered requests", p50=1.0, **extra):
    mismatches = mismatches or {}
    return LoadResult(
        engine=extra.pop("engine", "Python fallback (wrk not installed)"),
        seconds=2.0,
        connections=8,
        requests=answered + sum(mismatches.values()),
        answered=answered,
        mismatches=mismatches,
        errors=0,
        p50_ms=p50,
        p90_ms=p50 * 2,
        p99_ms=p50 * 4,
        max_ms=p50 * 5,
        latency_of=latency_of,
        proof_header=tier.proof_header,
        proof_value=tier.proof_value,
        **extra,
    )


@pytest.fixture
def bench():
    """A finished benchmark of one page: every tier but warm answered."""
    from strata.bench.breakdown import breakdown

    with FakeStack() as server:
        endpoints = endpoints_of(server)
    plan = BenchPlan(endpoints, ["/"], list(TIERS), PythonLoad(), seconds=2, warmup=1)
    runs = [
        TierRun("/", ACCELERATOR, "measured", load=load(ACCELERATOR, 20_000, p50=0.7)),
        TierRun("/", PAGE, "measured", load=load(PAGE, 3_988, {"page-miss": 12}, p50=8.0)),
        TierRun(
            "/",
            WARM,
            "unavailable",
            reason="answered by page-hit, not bypass: bench warm (X-Strata; status 200)",
            observed={"x-strata": "page-hit"},
        ),
        TierRun(
            "/",
            COLD,
            "measured",
            load=load(COLD, 300, p50=900.0),
            breakdown=breakdown([response(57, 3, 10, 30, slow=[(41.5, "SELECT 1")])]),
        ),
    ]
    return BenchRun(plan, runs, started_at="2026-11-29T10:00:00+00:00", finished_at="x")


def test_the_table_shows_each_tier_beside_the_seeds_target(bench):
    console = Console(width=200, record=True)
    console.print(summary_table(bench))
    text = console.export_text()
    for label in ("10 ms", "35 ms", "100–300 ms", "500 ms–2 s"):
        assert label in text
    assert "3,988 of 4,000" in text
    assert "unavailable" in text
    assert re.search(r"cold \(Django with cold cache\).*900 ms.*on target", text)


def test_the_notes_report_mismatches_unavailable_tiers_the_fallback_and_warm_db_buffers(bench):
    lines = notes(bench)
    assert any(
        "12 of 4,000 requests were answered by page-miss, not page-hit (X-Strata); "
        "not counted in the figures" in line
        for line in lines
    )
    assert any(line.startswith("warm tier unavailable for /, not measured: ") for line in lines)
    assert any(line.startswith("Python fallback (wrk not installed): ") for line in lines)
    assert COLD_NOTE in lines


def test_wrk_figures_with_many_mismatches_are_declared_not_valid(bench):
    bench.runs[1].load = load(
        PAGE, 2_000, {"page-miss": 2_000}, latency_of="all responses", engine="wrk 4.1.0"
    )
    lines = notes(bench)
    assert any("counted apart (wrk's latencies include them)" in line for line in lines)
    assert any("50% of the responses came from another tier" in line for line in lines)
    console = Console(width=200, record=True)
    console.print(summary_table(bench))
    assert "not valid" in console.export_text()


def test_the_report_writes_json_png_and_a_self_contained_html_page(bench, tmp_path):
    written, skipped = write_reports(bench, tmp_path / "out")
    assert skipped == []
    assert set(written) == {"json", "png", "html"}
    data = json.loads(written["json"].read_text())
    assert data["load"] == {
        "engine": "Python fallback (wrk not installed)",
        "fallback": True,
        "seconds": 2,
        "warmup_seconds": 1,
        "connections": 8,
    }
    assert data["machine"]["cpus"]
    page = data["results"][1]
    assert (page["answered"], page["requests"], page["mismatches"]) == (
        3988,
        4000,
        {"page-miss": 12},
    )
    assert data["results"][2]["status"] == "unavailable"
    cold = data["results"][3]["breakdown"]
    assert cold["over_30_percent"] == ["db"] and cold["slowest_queries"][0]["sql"] == "SELECT 1"
    assert written["png"].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    html = written["html"].read_text()
    assert "data:image/png;base64," in html
    # Nothing to fetch: no external address, script, stylesheet link or remote font.
    for outside in ("http://", "https://", "<script", "<link", "url(", "//cdn"):
        assert outside not in html


def test_without_matplotlib_the_json_and_tables_are_written_and_the_report_says_so(
    bench, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    written, skipped = write_reports(bench, tmp_path)
    assert set(written) == {"json", "html"}
    assert skipped and "matplotlib is not installed" in skipped[0]
    assert "matplotlib is not installed" in written["html"].read_text()
    assert json.loads(written["json"].read_text())["results"]


RATIOS = {
    "seconds": 2.0,
    "accelerator": [
        {
            "name": "varnish1",
            "up": True,
            "hit_ratio": 0.998,
            "hits": 19_960,
            "lookups": 20_000,
            "requests": 20_000,
            "source": "varnishstat -n /run/varnish1",
        }
    ],
    "page_cache": [
        {
            "name": "app1",
            "up": True,
            "hit_ratio": None,
            "hits": 0,
            "lookups": 0,
            "requests": 0,
            "source": "http://127.0.0.1:8101/-/metrics",
        }
    ],
    "query_cache": [],
}


def test_the_report_gives_the_hit_ratios_seen_during_each_run_and_where_they_were_read(
    bench, tmp_path
):
    bench.plan.read_metrics = lambda: None  # read: the stack came from its run directory
    bench.runs[0].hit_ratios = RATIOS
    lines = notes(bench)
    assert (
        "/ accelerator: during the run: accelerator varnish1 99.8% (19,960 of 20,000); "
        "page cache app1 — (no lookups)"
    ) in lines
    assert "/ page: hit ratios during the run: not read" in lines
    assert (
        "hit ratios read from http://127.0.0.1:8101/-/metrics, varnishstat -n /run/varnish1"
        in lines
    )
    written, _ = write_reports(bench, tmp_path / "out")
    data = json.loads(written["json"].read_text())
    assert data["results"][0]["hit_ratios"] == RATIOS
    assert "hit_ratios" not in data["results"][1]


def test_a_stack_given_by_url_says_its_hit_ratios_were_not_read(bench):
    assert "hit ratios during the runs: not read (the stack was given by URL)" in notes(bench)
