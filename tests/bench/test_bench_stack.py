"""`strata bench` through the real stack (HAProxy → Varnish → Gunicorn → Redis, PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from strata.cli.main import cli

pytestmark = pytest.mark.stack


def test_strata_bench_measures_the_real_stack_tier_by_tier(stack, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "--run-dir",
            str(stack.run_dir),
            "--out",
            str(tmp_path),
            "--seconds",
            "1",
            "--warmup",
            "0",
            "--connections",
            "4",
            "/",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    rows = {row["tier"]: row for row in data["results"]}
    for tier in ("accelerator", "page"):
        assert rows[tier]["status"] == "measured", rows[tier]
        assert rows[tier]["answered"] > 0
    for tier in ("warm", "cold"):
        row = rows[tier]
        if row["status"] == "unavailable":  # the app does not answer in bench mode
            assert row["reason"].startswith("answered by ")
        else:
            assert row["status"] == "measured" and row["answered"] > 0, row
            assert row["breakdown"]["requests"] > 0
    assert {p.suffix for p in tmp_path.iterdir()} == {".json", ".png", ".html"}
    # What the caches answered during each run, read from the stack's own counters.
    (varnish,) = rows["accelerator"]["hit_ratios"]["accelerator"]
    assert varnish["hit_ratio"] > 0.9 and varnish["source"].startswith("varnishstat -n ")
    page = {e["name"]: e for e in rows["page"]["hit_ratios"]["page_cache"]}
    every = page.get("all") or next(iter(page.values()))
    assert every["hit_ratio"] > 0.9 and every["source"].endswith("/-/metrics")
    assert "hit ratios read from " in result.output
