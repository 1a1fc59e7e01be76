"""Writes through a management command: the writer's environment, the demo's
``edit_article`` (on a throwaway SQLite database: no stack), and how such a write is
acknowledged, killed and judged."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from strata.check.commands import Writer, writer_environment
from strata.check.freshness import check
from strata.check.history import ACKED, UNKNOWN, History, Phase, Read, Write, write_line
from strata.check.history import History as Merged
from strata.stack.config import demo_project

STACK_ENVIRONMENT = {
    "directory": "/srv/site",
    "python": "/srv/venv/bin/python",
    "environment": {
        "DATABASE_URL": "postgres://strata@127.0.0.1:8095/strata",
        "CACHE_URL": "redis://127.0.0.1:8096/0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "STRATA_RUN_DIR": "/srv/run",
        "STRATA_PURGE_SECRET": "s3cret",
        "STRATA_BENCH_SECRET": "s3cret",
        "STRATA_EDGE_TTL": "300",
        "STRATA_ACCELERATORS": "http://127.0.0.1:8081",
        "DJANGO_SETTINGS_MODULE": "site.settings",
        "PYTHONPATH": "/srv/site",
    },
}


def test_a_command_writer_knows_only_the_database_and_the_cache():
    ours = {"PATH": "/usr/bin", "HOME": "/root", "STRATA_ACCELERATORS": "http://x:1"}
    ours |= {"DJANGO_DEBUG": "1", "DATABASE_REPLICA_URL": "postgres://r", "PYTHONPATH": "/x"}
    env = writer_environment(STACK_ENVIRONMENT, bus=True, base=ours)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "DATABASE_URL": "postgres://strata@127.0.0.1:8095/strata",
        "CACHE_URL": "redis://127.0.0.1:8096/0",
        "DJANGO_SETTINGS_MODULE": "site.settings",
        "PYTHONPATH": "/srv/site",
    }


def test_without_the_bus_a_command_writer_also_gets_the_accelerators_and_the_secret():
    env = writer_environment(STACK_ENVIRONMENT, bus=False, base={})
    assert env["STRATA_ACCELERATORS"] == "http://127.0.0.1:8081"
    assert env["STRATA_PURGE_SECRET"] == "s3cret"
    assert "STRATA_BENCH_SECRET" not in env and "STRATA_RUN_DIR" not in env


@pytest.fixture(scope="module")
def demo_writer(tmp_path_factory):
    """The demo's project on a seeded SQLite file and a file cache, as a command writer."""
    where = tmp_path_factory.mktemp("edit-article")
    project = demo_project()
    record = {
        "directory": str(project.directory),
        "python": sys.executable,
        "environment": {
            "DATABASE_URL": f"sqlite:///{where / 'db.sqlite3'}",
            "CACHE_URL": f"file://{where / 'cache'}",
            "DJANGO_SETTINGS_MODULE": project.settings_module,
            "PYTHONPATH": str(project.directory),
        },
    }
    writer = Writer.for_stack(record, True, where / "commands.log", sys.executable)
    for argv in (
        ["migrate", "--noinput"],
        ["seed_newsroom", "--articles", "2", "--comments", "1", "--authors", "1"]
        + ["--tags", "1", "--readers", "1"],
    ):
        run = writer.run(argv, "\0", timeout=120)
        assert run.returncode == 0, run.output
    return writer


def article(writer: Writer, pk: int) -> dict:
    code = (
        "import json; from newsroom.models import Article as A; a = A.objects.get(pk=%d); "
        "print(json.dumps({'title': a.title, 'comments': [c.body for c in a.comments.all()]}))"
    )
    result = subprocess.run(
        [writer.python, "-m", "django", "shell", "-c", code % pk],
        cwd=writer.directory,
        env=writer.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_edit_article_is_acknowledged_by_the_line_it_prints_after_its_commit(demo_writer):
    run = demo_writer.run(["edit_article", "1", "--title", "New chk-r-t1-v1"], "chk-r-t1-v1", 60)
    assert run.returncode == 0 and not run.killed
    assert run.sent < run.committed <= run.ended and run.acknowledged == run.committed
    assert article(demo_writer, 1)["title"] == "New chk-r-t1-v1"


def test_a_writer_killed_right_after_its_commit_is_still_acknowledged(demo_writer):
    marker = "chk-r-note1-v1"
    argv = ["edit_article", "1", "--comment", f"Note {marker}", "--kill-after-commit"]
    run = demo_writer.run(argv, marker, 60)
    assert run.returncode == -signal.SIGKILL and run.killed
    assert run.acknowledged == run.committed is not None
    assert f"Note {marker}" in article(demo_writer, 1)["comments"]  # the commit came first


def test_a_failed_command_leaves_the_outcome_unknown_and_says_why(demo_writer):
    run = demo_writer.run(["edit_article", "999", "--title", "chk-r-t2-v1"], "chk-r-t2-v1", 60)
    assert run.returncode == 1 and run.acknowledged is None
    assert run.problem() == "exit status 1: CommandError: no article with id 999"


def test_a_command_that_hangs_is_killed_at_its_timeout(demo_writer):
    run = demo_writer.run(["shell", "-c", "import time; time.sleep(60)"], "never", timeout=3)
    assert run.returncode is None and run.acknowledged is None
    assert run.problem() == "timed out after 3 s (killed)"


def test_command_writes_are_counted_apart_and_judged_like_any_other():
    killed = Write(
        0, "note1", 1, "manage.py edit_article 1", 9.5, 10.0, -9, ACKED, "", "command", True
    )
    failed = Write(
        0, "note1", 2, "manage.py edit_article 1", 19.0, 20.0, 1, UNKNOWN, "exit 1", "command"
    )
    merged = Merged()
    merged.add_lines([write_line(killed), write_line(failed)])
    assert merged.writes == [killed, failed]  # the JSON line keeps how it was written
    stale = Read(1, "/articles/a/", "anon", 13.0, 13.01, 200, {}, ("note1",), "HIT")
    history = History(reads=[stale], writes=[killed, failed])
    verdict = check(history, [Phase("writer-kill", 0.0, end=100.0)], 2.5, {"note": "all"})
    figures = verdict.phases[0]
    assert (figures.writes_command, figures.writes_killed) == (2, 1)
    assert figures.writes_acked == 1 and figures.writes_unknown == 1
    assert figures.writes_errors == 1 and figures.writes_5xx == 0 and not figures.statuses
    # The killed writer's commit is owed to the edge like any other: 3 s stale is a failure.
    assert figures.beyond_window == 1 and verdict.failed
