"""The bus's benchmarks run end to end in their ``--smoke`` mode and write their JSON
(figures are the scripts' to print; no timing is asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, require_real_stack

pytestmark = pytest.mark.stack


def run_benchmark(name: str, out) -> dict:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


def test_bus_purge_measures_both_ways_and_both_node_counts(tmp_path):
    require_real_stack()
    results = run_benchmark("bus_purge.py", tmp_path / "bus_purge.json")
    assert results["smoke"] is True
    for way in ("bus", "direct"):
        assert results["purge_window"][way]["lost"] == 0
        assert results["purge_window"][way]["p50_ms"] is not None
    assert [row["nodes"] for row in results["throughput"]] == [1, 2]
    assert all(row["tags_per_second"] > 0 for row in results["throughput"])


def test_writer_reach_counts_edits_and_reads_for_each_writer(tmp_path):
    require_real_stack()
    results = run_benchmark("writer_reach.py", tmp_path / "writer_reach.json")
    rows = {row["writer"]: row for row in results["writers"]}
    assert len(rows) == 2
    for row in rows.values():
        assert row["edits"] > 0 and row["reads"] > 0 and row["writer_exit"] == 0
