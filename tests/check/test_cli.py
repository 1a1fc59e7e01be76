"""`strata check` from the command line: one clear line and exit status 2 for a mistake."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from strata.check.faults import FAULTS
from strata.cli.check import parse_faults
from strata.cli.main import cli


def check(*args):
    return CliRunner().invoke(cli, ["check", *args])


def test_without_a_running_stack_it_says_how_to_start_one_and_exits_2(tmp_path):
    result = check("--run-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert f"no stack is running for {tmp_path}" in result.output
    assert "strata up --run-dir" in result.output and "strata check --start" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--faults", "app-kill,db-dwon"], "unknown fault 'db-dwon'"),
        (["--faults", "app-kill,app-kill"], "a fault is named twice"),
        (["--clients", "0"], "--clients"),
        (["--seconds", "0"], "--seconds"),
    ],
)
def test_mistakes_in_the_arguments_are_usage_errors(tmp_path, args, message):
    result = check("--run-dir", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_bad_scenario_file_is_one_line_and_exit_2(tmp_path):
    scenario = tmp_path / "site.toml"
    scenario.write_text('[users]\nreader = { username = "r" }\n')
    result = check("--run-dir", str(tmp_path), "--scenario", str(scenario))
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert f"{scenario}: missing [objects]: expected" in result.output
    missing = check("--run-dir", str(tmp_path), "--scenario", str(tmp_path / "none.toml"))
    assert missing.exit_code == 2 and "none.toml: cannot read: No such file" in missing.output


def test_the_fault_schedule_comes_from_a_list_or_a_file(tmp_path):
    assert parse_faults("all") == (list(FAULTS), {})
    assert parse_faults("none") == ([], {})
    assert parse_faults(" db-down , purge-fail ") == (["db-down", "purge-fail"], {})
    schedule = tmp_path / "faults.toml"
    schedule.write_text('faults = ["app-hang", "cache-restart"]\nphase_seconds = 12\n')
    assert parse_faults(str(schedule)) == (["app-hang", "cache-restart"], {"phase_seconds": 12.0})
    schedule.write_text('faults = ["app-hang"]\nphases = 3\n')
    result = check("--run-dir", str(tmp_path), "--faults", str(schedule))
    assert (
        result.exit_code == 2
        and "phases: unknown key; did you mean 'phase_seconds'?" in result.output
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('faults = ["app-hng"]\n', "faults.toml:1: faults: unknown fault 'app-hng'"),
        ('faults = ["app-kill", "app-kill"]\n', "faults.toml:1: faults: a fault is named twice"),
        ("faults = []\nhold_share = 2\n", "faults.toml:2: hold_share: 2 (a number) is wrong"),
        ("faults = [\n", "faults.toml: not valid TOML"),
    ],
)
def test_a_fault_schedule_file_is_read_like_a_scenario(tmp_path, text, message):
    schedule = tmp_path / "faults.toml"
    schedule.write_text(text)
    with pytest.raises(click.BadParameter) as raised:
        parse_faults(str(schedule))
    assert message in str(raised.value)
