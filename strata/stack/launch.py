"""``strata bench --start`` and ``strata check --start``: run ``strata up`` (the demo,
seeded) as a child process, and stop it afterwards.

A child ``strata up`` is the very stack a person starts, supervisor included (the
check's fault drills need programs that come back). It gets a session of its own, so
that a Ctrl-C in the terminal reaches the command (which heals its faults and reports)
and not the stack; the command stops it at the end with SIGINT, by its pid, as a
person would with Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .errors import StackError
from .probes import http_get
from .process import pid_alive, tail
from .runstate import NoStack, RunState

__all__ = ["StartedStack", "start_stack"]


class StartedStack:
    """A ``strata up`` that this command started."""

    def __init__(self, process: subprocess.Popen, run_dir: Path, log_path: Path):
        self.process = process
        self.run_dir = run_dir
        self.log_path = log_path

    @property
    def pid(self) -> int:
        """The pid of the child ``strata up``."""
        return self.process.pid

    def stop(self, timeout: float = 60.0) -> str | None:
        """SIGINT to ``strata up`` (only that pid); SIGTERM, then SIGKILL if it hangs.
        Returns a warning when it did not stop cleanly."""
        if self.process.poll() is not None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout)
            return None
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
            return (
                f"strata up (pid {self.pid}) ignored SIGINT for {timeout:.0f} s; stopped by SIGTERM"
            )
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            return f"strata up (pid {self.pid}) did not stop; killed (its programs die with it)"


def start_stack(
    run_dir: Path,
    port: int,
    timeout: float = 300.0,
    progress: Callable[[str], None] | None = None,
) -> StartedStack:
    """Start ``strata up --run-dir RUN --port PORT`` (the demo, seeded) and wait until
    ``state.json`` names it and a page answers through the load balancer; ``StackError``
    (with the reason and the log) when it does not come up."""
    say = progress or (lambda message: None)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    # PostgreSQL runs as its own user when strata up runs as root: it must get in.
    with contextlib.suppress(OSError):
        run_dir.chmod(run_dir.stat().st_mode | 0o755)
    log_path = run_dir / "strata-up.out"
    command = [
        sys.executable,
        "-m",
        "strata.cli",
        "up",
        "--run-dir",
        str(run_dir),
        "--port",
        str(port),
    ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "COLUMNS": "200"},
        )
    started = StartedStack(process, run_dir, log_path)
    deadline = time.monotonic() + timeout
    say(f"starting the stack: strata up --run-dir {run_dir} --port {port} (pid {process.pid})")
    last = "state.json not written yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(
                "strata up",
                f"exited with status {process.returncode} while starting: {_last_line(log_path)}",
                log_path,
            )
        try:
            state = RunState.running(run_dir)
        except NoStack as error:
            last = str(error)
            time.sleep(0.5)
            continue
        if state.pid != process.pid or not pid_alive(process.pid):
            last = "state.json belongs to another strata up"
            time.sleep(0.5)
            continue
        try:
            answer = http_get(state.host, state.port, "/", timeout=10)
            if answer.status == 200:
                return started
            last = f"GET / answered {answer.status}"
        except OSError as error:
            last = f"GET / failed: {error}"
        time.sleep(0.5)
    started.stop()
    raise StackError(
        "strata up", f"the stack did not come up in {timeout:.0f} s ({last})", log_path
    )


def _last_line(path: Path) -> str:
    lines = [line for line in tail(path, 30).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1].strip()
