"""``benchmarks/metrics_cost.py --smoke`` runs end to end and proves what it measured:
every timed request was a page hit answered below Django, the "on" and "direct" blocks
counted each hit in ``strata_requests_total`` and the "off" blocks none, in memory and
with multiprocess files (figures are the script's to print; no time is asserted).
About 6 s: two processes, each seeding nothing and timing 300 hits."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import REPO


def test_smoke_run_proves_each_variant_counted_what_it_claims(tmp_path):
    out = tmp_path / "metrics_cost.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "metrics_cost.py"),
            "--smoke",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["smoke"] is True
    assert results["ok"], [check for check in results["checks"] if not check["ok"]]
    cases = results["cases"]
    assert set(cases) == {"in memory", "multiprocess files"}
    assert cases["multiprocess files"]["multiprocess"] is True
    assert cases["in memory"]["multiprocess"] is False
    for case in cases.values():
        assert case["counted_per_block"]["off"] == [0]
        assert case["counted_per_block"]["on"] == [case["per_block"]]
