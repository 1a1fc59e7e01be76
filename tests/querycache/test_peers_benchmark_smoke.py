"""``benchmarks/querycache_peers.py --smoke`` runs end to end and proves what it measured:
no variant answered from the page cache, plain Django used no cache, warm requests hit the
query cache and cold ones missed (figures are the script's to print; no time is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, require_real_stack

pytestmark = pytest.mark.stack


def test_smoke_run_proves_every_variant_measures_what_it_claims(tmp_path):
    require_real_stack()
    out = tmp_path / "querycache_peers.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "querycache_peers.py"),
            "--smoke",
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["smoke"] is True
    assert results["proof"]["ok"], [c for c in results["proof"]["checks"] if not c["ok"]]
    variants = results["variants"]
    assert variants["plain Django"]["strata_query_cache_installed"] is False
    assert variants["Strata query cache"]["strata_query_cache_installed"] is True
    for label, variant in variants.items():
        if "error" in variant:
            continue  # a peer that is not installed is reported, not measured
        for page in ("home", "article"):
            evidence = variant["evidence"][page]
            assert evidence["warm"]["x_strata"] not in ("page-hit", "page-stale", "page-miss")
            if label != "plain Django":
                assert evidence["warm"]["queries"] == 0, (label, page)
                assert evidence["cold"]["queries"] > 0, (label, page)
    strata = variants["Strata query cache"]["evidence"]["article"]
    assert strata["warm"]["strata_stats"]["hit"] > 0
    assert strata["cold"]["strata_stats"].get("hit", 0) == 0
    assert variants["plain Django"]["evidence"]["article"]["cold"]["redis"]["commands"] == 0
