"""`strata up`'s supervisor: a program that died is started again, unless it is held;
a failed restart waits longer each time. A stand-in stack, no programs."""

from __future__ import annotations

from pathlib import Path

from strata.stack.errors import StackError
from strata.stack.supervisor import MAX_BACKOFF, Supervisor


class Process:
    returncode = -9


class StandInProgram:
    """A program that is running or not, as the test says."""

    def __init__(self, name: str):
        self.name = name
        self.implementation = "stand-in"
        self.alive = True
        self.process = Process()

    def running(self) -> bool:
        return self.alive


class StandInStack:
    """The part of :class:`strata.stack.stack.Stack` that the supervisor uses."""

    def __init__(self, run_dir: Path, *names: str, restarts_fail: bool = False):
        self.run_dir = run_dir
        self.programs = [StandInProgram(name) for name in names]
        self.restarts_fail = restarts_fail
        self.restarted: list[str] = []
        self.states_written = 0

    def hold_path(self, program) -> Path:
        return self.run_dir / "hold" / program.name

    def restart(self, program) -> None:
        self.restarted.append(program.name)
        if self.restarts_fail:
            raise StackError(program.name, "would not start")
        program.alive = True

    def write_state(self) -> None:
        self.states_written += 1


class Clock:
    """Seconds that pass when the test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def events(stack, clock=None) -> tuple[Supervisor, list[tuple]]:
    seen: list[tuple] = []
    supervisor = Supervisor(
        stack,
        on_exit=lambda program, code: seen.append(("exit", program.name, code)),
        on_failure=lambda program, why, delay: seen.append(("failed", program.name, delay)),
        on_back=lambda program: seen.append(("back", program.name)),
        clock=clock or Clock(),
    )
    return supervisor, seen


def test_a_program_that_died_is_restarted_and_the_state_rewritten(tmp_path):
    stack = StandInStack(tmp_path, "redis", "app1")
    supervisor, seen = events(stack)
    stack.programs[0].alive = False

    supervisor.check()

    assert stack.restarted == ["redis"]
    assert seen == [("exit", "redis", -9), ("back", "redis")]
    assert stack.states_written == 1


def test_running_programs_are_left_alone(tmp_path):
    stack = StandInStack(tmp_path, "redis", "app1")
    supervisor, seen = events(stack)

    supervisor.check()

    assert stack.restarted == [] and seen == []


def test_a_held_program_stays_stopped_until_its_hold_file_goes(tmp_path):
    stack = StandInStack(tmp_path, "postgres")
    supervisor, _ = events(stack)
    stack.programs[0].alive = False
    hold = stack.hold_path(stack.programs[0])
    hold.parent.mkdir()
    hold.touch()

    supervisor.check()
    assert stack.restarted == []

    hold.unlink()
    supervisor.check()
    assert stack.restarted == ["postgres"]


def test_a_failed_restart_is_tried_again_only_after_a_growing_wait(tmp_path):
    stack = StandInStack(tmp_path, "varnish1", restarts_fail=True)
    clock = Clock()
    supervisor, seen = events(stack, clock)
    stack.programs[0].alive = False

    supervisor.check()
    clock.now += 0.9
    supervisor.check()  # still waiting

    assert stack.restarted == ["varnish1"]
    assert seen[-1] == ("failed", "varnish1", 1.0)

    clock.now += 0.1
    supervisor.check()
    assert stack.restarted == ["varnish1", "varnish1"]
    assert seen[-1] == ("failed", "varnish1", 2.0)
    assert stack.states_written == 0


def test_the_wait_between_failed_restarts_stops_growing(tmp_path):
    stack = StandInStack(tmp_path, "varnish1", restarts_fail=True)
    clock = Clock()
    supervisor, seen = events(stack, clock)
    stack.programs[0].alive = False

    for _ in range(10):
        supervisor.check()
        clock.now += MAX_BACKOFF

    assert seen[-1] == ("failed", "varnish1", MAX_BACKOFF)
