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
