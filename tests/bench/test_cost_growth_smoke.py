"""``benchmarks/cost_growth.py --smoke`` runs end to end and proves what it measured: every
timed hit was a page-cache hit, no warm render was and none reached PostgreSQL, a cold
render missed, plain Django used no Strata layer, and a write past ``WRITE_ROW_LIMIT``
invalidated its table instead of its rows (figures are the script's to print; no time is
asserted). It starts PostgreSQL, Redis and five Django processes: 18-22 s on 2 cores
under other jobs' load (most of it the processes' start-up)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, require_real_stack

pytestmark = pytest.mark.stack


def test_smoke_run_proves_each_figure_and_the_row_limit(tmp_path):
    require_real_stack()
    out = tmp_path / "cost_growth.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "cost_growth.py"), "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["smoke"] is True
    assert results["proof"]["ok"], [c for c in results["proof"]["checks"] if not c["ok"]]
    # A page of N articles read by key records a tag per article, and its hits stay hits.
    pages = {row["n"]: row for row in results["tags_per_page"]}
    assert pages[10]["row_tags"] - pages[1]["row_tags"] == 9
    assert set(pages[10]["hit near"]["x_strata"]) == {"page-hit"}
    limit = results["write_row_limit"]
    by_rows = {row["n"]: row for row in results["writes"]}
    small, large = by_rows[1], by_rows[limit + 1]
    assert small["update"]["row_tags"] >= 1
    assert large["update"]["row_tags"] == 0 and large["update"]["table_tag"]
    assert large["delete"]["row_tags"] == 0 and large["delete"]["table_tag"]
    memory = results["memory"]["home"]["redis"]
    assert memory["page"]["keys"] == 1 and memory["version"]["keys"] > 0
