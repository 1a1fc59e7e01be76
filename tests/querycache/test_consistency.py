"""Concurrent writers and readers in separate processes: no read is ever stale.

Runs ``tests/consistency.py`` on the backend that ``DATABASE_URL``/``CACHE_URL`` name
(under ``python -m tests.backends``: PostgreSQL + Redis, PostgreSQL + Memcached, SQLite
+ the file cache), or on SQLite and the file cache in a scratch directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def backend_env(tmp_path):
    env = dict(os.environ)
    if "DATABASE_URL" not in env:
        scratch = Path(tempfile.mkdtemp(prefix="strata-consistency-", dir="/tmp"))
        env["DATABASE_URL"] = f"sqlite:///{scratch / 'db.sqlite3'}"
        env["CACHE_URL"] = f"file://{scratch / 'cache'}"
    return env


def run_checker(env, *args) -> tuple[int, dict, str]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.consistency", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = next(
        (json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")), {}
    )
    return result.returncode, report, result.stdout + result.stderr


def test_every_read_sees_every_write_committed_before_it_started(backend_env):
    code, report, output = run_checker(backend_env, "--seconds", "5", "--seed", "7")
    print(output)
    assert report, output
    assert report["stale"] == 0, report["examples"]
    assert report["phantom"] == 0, report["examples"]
    assert report["reads_checked"] > 500 and report["writes"] > 50
    # Every model shape was read: the demo's, inheritance, generic relations, a tree.
    assert set(report["reads_by_kind"]) == {"title", "count", "place", "notes", "depth"}
    assert report["cache_hits"] > 0, "the cache answered nothing: the check would be vacuous"
    assert code == 0, output


def test_the_checker_catches_writers_that_do_not_invalidate(backend_env):
    code, report, output = run_checker(backend_env, "--seconds", "4", "--seed", "7", "--sabotage")
    assert code == 1, output
    assert report["stale"] > 0
