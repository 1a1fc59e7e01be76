"""`strata up` as a person runs it: starts, reports, refuses, falls back, stops cleanly."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strata.stack.ports import port_is_free
from strata.stack.probes import http_get
from strata.stack.process import live_session_members, pid_alive
from tests.helpers import free_base_port, make_run_dir, remove_run_dir, require_real_stack

STRATA = [sys.executable, "-m", "strata.cli"]


@pytest.fixture
def run_dir():
    path = make_run_dir()
    yield path
    remove_run_dir(path)


def start_up(run_dir: Path, port: int, *args: str, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *STRATA,
            "up",
            "--run-dir",
            str(run_dir),
            "--port",
            str(port),
            "--app-servers",
            "2",
            "--workers",
            "1",
            "--no-seed",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


ANNOUNCED = "Ctrl-C stops everything."
_printed: dict[int, list[str]] = {}


def wait_until_serving(process: subprocess.Popen, run_dir: Path, timeout: float = 90) -> dict:
    """Wait until `strata up` has written its state file and printed what it started.

    The state file is written the moment everything answers, a little before the table and
    the notes are printed: a signal sent in between would stop the stack before it speaks.
    """
    deadline = time.monotonic() + timeout
    state_file = run_dir / "state.json"
    printed = _printed.setdefault(process.pid, [])
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"strata up exited {process.returncode}:\n{process.stdout.read()}")
        readable, _, _ = select.select([process.stdout.fileno()], [], [], 0.1)
        if readable:  # read the pipe itself: a line left in Python's buffer would never wake select
            printed.append(os.read(process.stdout.fileno(), 65536).decode(errors="replace"))
        if state_file.exists() and ANNOUNCED in "".join(printed):
            return json.loads(state_file.read_text())
    process.kill()
    raise AssertionError("strata up did not come up in time:\n" + "".join(printed))


def stop(process: subprocess.Popen, signum=signal.SIGTERM) -> str:
    """Signal `strata up` and return everything it printed, from its first line."""
    process.send_signal(signum)
    output, _ = process.communicate(timeout=60)
    return "".join(_printed.pop(process.pid, [])) + output


def assert_nothing_left(pids: list[int], ports: list[int]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [p for p in pids if pid_alive(p) or live_session_members(p)]
        busy = [p for p in ports if not port_is_free("127.0.0.1", p)]
        if not alive and not busy:
            return
        time.sleep(0.2)
    raise AssertionError(f"left behind: processes {alive}, ports {busy}")


def test_up_serves_then_sigterm_stops_everything_and_frees_every_port(run_dir):
    require_real_stack()
    port = free_base_port()
    process = start_up(run_dir, port)
    state = wait_until_serving(process, run_dir)
    layers = {row["layer"]: row for row in state["rows"]}
    assert layers["load balancer"]["implementation"] == "HAProxy"
    assert layers["accelerator"]["implementation"] == "Varnish"
    assert layers["database"]["implementation"] == "PostgreSQL"
    assert http_get("127.0.0.1", port, "/").status == 200

    # A second `strata up` on the same run directory is refused, clearly.
    second = subprocess.run(
        [*STRATA, "up", "--run-dir", str(run_dir), "--port", str(port + 1000)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "already running" in second.stdout and "Traceback" not in second.stdout + second.stderr

    # `strata status` reads the running stack.
    shown = subprocess.run(
        [*STRATA, "status", "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and "Varnish" in shown.stdout
    # The invalidation bus (Redis): its purger is a row with its pid, and the bus has a
    # section of its own, naming the purger that delivers.
    purger = layers["purger"]
    assert purger["implementation"] == "strata_purger" and pid_alive(purger["pid"])
    assert "strata_purger" in shown.stdout and "Invalidation bus:" in shown.stdout
    assert f":{purger['pid']} (lease" in shown.stdout, shown.stdout

    pids = [row["pid"] for row in state["rows"] if row["pid"]]
    ports = [port + offset for offset in (0, 80, 90, 101, 102, 379, 432)]
    output = stop(process)
    assert process.returncode == 0, output
    assert "stopped." in output
    assert_nothing_left(pids, ports)
    assert not (run_dir / "strata-up.pid").exists()


def test_down_stops_a_running_stack(run_dir):
    require_real_stack()
    port = free_base_port()
    process = start_up(run_dir, port, "--embedded")
    state = wait_until_serving(process, run_dir)
    down = subprocess.run(
        [*STRATA, "down", "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=90
    )
    assert down.returncode == 0, down.stdout + down.stderr
    process.communicate(timeout=30)
    assert_nothing_left([row["pid"] for row in state["rows"] if row["pid"]], [port])


def test_a_port_already_taken_names_the_component_and_starts_nothing(run_dir):
    require_real_stack()
    port = free_base_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port + 379))  # Redis's port
        squatter.listen()
        result = subprocess.run(
            [*STRATA, "up", "--run-dir", str(run_dir), "--port", str(port), "--no-seed"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"redis: port {port + 379} on 127.0.0.1 is already in use" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not list((run_dir / "logs").glob("*.log"))  # nothing was started


def test_a_failing_component_is_named_with_its_log_and_nothing_is_left(run_dir, tmp_path):
    require_real_stack()
    port = free_base_port()
    result = subprocess.run(
        [
            *STRATA,
            "up",
            "--run-dir",
            str(run_dir),
            "--port",
            str(port),
            "--project-dir",
            str(tmp_path),
            "--settings",
            "no_such_site.settings",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1
    assert (
        "django: the project does not load (no_such_site.settings): ModuleNotFoundError"
        in result.stdout
    )
    assert "manage.log" in result.stdout
    assert "Traceback" not in result.stdout.split("manage.log")[0]
    for port_in_use in (port + 379, port + 432):
        assert port_is_free("127.0.0.1", port_in_use)


def test_bad_options_are_a_usage_error_not_a_traceback(run_dir):
    result = subprocess.run(
        [*STRATA, "up", "--run-dir", str(run_dir), "--port", "32600"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "choose a base port" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--hosts", "1"], "1 is not in the range 2<=x<=8"),
        (["--loopback"], "--loopback goes with --hosts N"),
        (["--hosts", "2", "--embedded"], "--hosts runs the real programs"),
        (["--pgbouncer", "--embedded"], "--pgbouncer pools PostgreSQL"),
    ],
)
def test_impossible_host_options_are_named_before_anything_starts(run_dir, options, message):
    result = subprocess.run(
        [*STRATA, "up", "--run-dir", str(run_dir), *options],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode in (1, 2)
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (run_dir / "state.json").exists()


def test_embedded_mode_runs_with_no_system_programs_on_path(run_dir):
    port = free_base_port()
    bare_path = str(Path(sys.executable).parent)  # the virtualenv only: no varnishd, haproxy...
    env = {**os.environ, "PATH": bare_path, "STRATA_POSTGRES_BINDIR": ""}
    process = start_up(run_dir, port, env=env)
    try:
        state = wait_until_serving(process, run_dir)
        implementations = " ".join(row["implementation"] for row in state["rows"])
        assert "SQLite (embedded)" in implementations
        assert "file cache (embedded" in implementations
        assert "none: the app server answers directly" in implementations
        answer = http_get("127.0.0.1", port, "/")
        assert answer.status == 200 and answer.headers["x-strata-server"].startswith("app1")
    finally:
        output = stop(process, signal.SIGINT)
    assert process.returncode == 0, output
    assert "not installed" in output
    assert_nothing_left([row["pid"] for row in state["rows"] if row["pid"]], [port])


def test_a_killed_strata_up_takes_its_programs_with_it(run_dir):
    require_real_stack()
    port = free_base_port()
    process = start_up(run_dir, port)
    state = wait_until_serving(process, run_dir)
    process.kill()  # SIGKILL: no chance to clean up; the kernel's parent-death signal does it
    process.communicate(timeout=30)
    assert_nothing_left(
        [row["pid"] for row in state["rows"] if row["pid"]],
        [port, port + 80, port + 90, port + 101, port + 379, port + 432],
    )


def test_an_unusable_run_directory_is_a_clear_error():
    result = subprocess.run(
        [*STRATA, "up", "--run-dir", "/proc/strata-cannot-be-here", "--port", "20000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot use the run directory" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
