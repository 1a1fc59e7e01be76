"""The bus's drills, purger-kill and writer-kill, on a recorded stack (no programs run):
registered and scheduled like the others, and skipped with a reason where they cannot
run."""

from __future__ import annotations

import random
import threading

import pytest

from strata.check.faults import FAULTS, FaultContext, FaultError, fault_named
from strata.check.history import Phase
from strata.check.scenario import demo_scenario, parse_scenario
from strata.check.schedule import read_schedule
from strata.check.target import Target
from strata.cli.check import parse_faults
from strata.stack.runstate import RunState
from tests.check.test_scenario import MINIMAL

PROGRAMS = {
    "varnish1": {"layer": "accelerator", "implementation": "Varnish", "port": 8081, "pid": 11},
    "app1": {"layer": "app server", "implementation": "Gunicorn", "port": 8091, "pid": 12},
    "redis": {"layer": "cache", "implementation": "Redis", "port": 8096, "pid": 13},
}
PURGER = {"purger": {"layer": "purger", "implementation": "strata_purger", "pid": 14}}


def target(tmp_path, programs) -> Target:
    state = RunState(tmp_path, 1, "http://127.0.0.1:8000", programs=programs)
    return Target(tmp_path, "127.0.0.1", 8000, 8090, "s3cret", state)


def test_the_bus_drills_come_last_in_the_default_schedule_and_in_files(tmp_path):
    assert list(FAULTS)[-2:] == ["purger-kill", "writer-kill"]
    assert parse_faults("purger-kill,writer-kill") == (["purger-kill", "writer-kill"], {})
    schedule = tmp_path / "faults.toml"
    schedule.write_text('faults = ["writer-kill", "purger-kill"]\n')
    assert read_schedule(schedule).faults == ["writer-kill", "purger-kill"]


def test_without_a_purger_both_bus_drills_are_skipped_and_say_why(tmp_path):
    stack = target(tmp_path, PROGRAMS)
    for name in ("purger-kill", "writer-kill"):
        reason = fault_named(name).unavailable(stack)
        assert reason.startswith(
            "no purger in state.json: the stack runs without the invalidation bus"
        )
    assert "a writer's purges die with the writer" in fault_named("writer-kill").unavailable(stack)


def test_purger_kill_needs_the_supervisor_that_restarts_the_purger(tmp_path):
    stack = target(tmp_path, {**PROGRAMS, **PURGER})  # no strata-up.pid: no supervisor
    assert "needs strata up's supervisor" in fault_named("purger-kill").unavailable(stack)
    assert fault_named("writer-kill").unavailable(stack) is None


def test_writer_kill_needs_a_command_write_that_can_kill_itself():
    drill = fault_named("writer-kill")
    assert drill.unsupported(demo_scenario()) is None
    reason = drill.unsupported(parse_scenario(MINIMAL, "site.toml"))
    assert reason.startswith('site.toml has no write with via = "command" and kill_after_commit')
    assert fault_named("purger-kill").unsupported(parse_scenario(MINIMAL)) is None


def test_writer_kill_tells_the_clients_for_the_hold_and_stops_on_heal(tmp_path):
    drill = fault_named("writer-kill")
    assert drill.holds
    flag = threading.Event()
    stack = target(tmp_path, {**PROGRAMS, **PURGER})
    ctx = FaultContext(
        stack, random.Random(1), tmp_path, "r1", kill_writers=flag, scenario=demo_scenario()
    )
    phase = Phase("writer-kill", 0.0, fault="writer-kill")
    drill.apply(ctx, phase)
    assert flag.is_set() and phase.details["writes"] == ["edit_article --kill-after-commit"]
    drill.heal(ctx, phase)
    drill.heal(ctx, phase)  # idempotent: the coordinator heals again in its finally
    assert not flag.is_set() and phase.details["stopped_killing"] is True
    with pytest.raises(FaultError, match="no client processes"):
        drill.apply(FaultContext(stack, random.Random(1), tmp_path, "r1"), phase)
