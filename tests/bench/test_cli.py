"""`strata bench` from the command line: one clear line for a mistake, a report otherwise."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from strata.bench.wrk import wrk_available
from strata.cli.main import cli
from tests.bench.conftest import write_run_dir


def bench(*args):
    return CliRunner().invoke(cli, ["bench", *args])


def test_without_a_running_stack_it_fails_with_one_line_suggesting_strata_up(tmp_path):
    result = bench("--run-dir", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert result.output.startswith(f"Error: no stack is running for {tmp_path}")
    assert f"strata up --run-dir {tmp_path}" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_stack_whose_strata_up_died_is_reported_in_one_line(tmp_path, fake):
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_run_dir(tmp_path, fake, pid=gone.pid)
    result = bench("--run-dir", str(tmp_path))
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert f"(its strata up, pid {gone.pid}, is gone)" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tiers", "page,fast"], "unknown tier fast"),
        (["articles"], "give a path"),
        (["https://example.org/"], "only http:// URLs or paths"),
    ],
)
def test_mistakes_in_the_arguments_are_usage_errors(tmp_path, args, message):
    result = bench("--run-dir", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def run_against(fake, tmp_path, *args):
    run_dir = write_run_dir(tmp_path / "run", fake)
    out = tmp_path / "out"
    result = bench("--run-dir", str(run_dir), "--out", str(out), "--warmup", "0", *args)
    return result, out


def test_it_prints_the_table_and_writes_json_png_and_html(fake, tmp_path):
    result, out = run_against(fake, tmp_path, "--seconds", "0.2", "--python-load")
    assert result.exit_code == 0, result.output
    assert "Python fallback (--python-load)" in result.output
    assert "strata bench: response time per tier" in result.output
    assert "where the time goes: /" in result.output
    assert "fails the 30% rule: database 60%" in result.output
    files = {path.suffix for path in out.iterdir()}
    assert files == {".json", ".png", ".html"}
    data = json.loads(next(out.glob("*.json")).read_text())
    assert [r["path"] for r in data["results"]][::4] == ["/", "/articles/first-story/"]
    assert {r["status"] for r in data["results"]} == {"measured"}


@pytest.mark.skipif(not wrk_available(), reason="wrk is not installed")
def test_with_wrk_installed_it_loads_with_wrk(fake, tmp_path):
    result, out = run_against(fake, tmp_path, "--seconds", "1", "--tiers", "page", "/")
    assert result.exit_code == 0, result.output
    data = json.loads(next(out.glob("*.json")).read_text())
    assert data["load"]["engine"].startswith("wrk ")
    assert not data["load"]["fallback"]
    assert data["results"][0]["answered"] == data["results"][0]["requests"] > 0


def test_a_full_url_addresses_another_stack_and_its_pool(fake, tmp_path):
    url = f"http://127.0.0.1:{fake.port}/articles/first-story/"
    result = bench(
        "--run-dir",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path / "out"),
        "--pool",
        f"127.0.0.1:{fake.port}",
        "--secret",
        "s3cret",
        "--seconds",
        "0.2",
        "--warmup",
        "0",
        "--python-load",
        "--tiers",
        "page,cold",
        url,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert [(r["path"], r["status"]) for r in data["results"]] == [
        ("/articles/first-story/", "measured"),
        ("/articles/first-story/", "measured"),
    ]
