"""The interface every program of the stack shares: prepare, start, wait, health, stop.

Adding another program (nginx, Traefik, ...) is adding one subclass of :class:`Program`.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import StackError
from .process import ManagedProcess, tail

__all__ = ["Program", "StatusRow", "find_program", "program_version"]


@dataclass
class StatusRow:
    """One line of the status table that ``strata up`` prints."""

    layer: str
    implementation: str
    version: str
    address: str
    pid: int | None
    log: str
    note: str = ""


def find_program(name: str) -> str | None:
    """Locate ``name`` on PATH (a program that is not on PATH counts as missing)."""
    return shutil.which(name)


def program_version(argv: list[str], parse) -> str:
    """Run a program's version flag and parse its output; '?' when that fails."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    with contextlib.suppress(Exception):
        return parse((out.stdout + out.stderr).strip())
    return "?"


class Program:
    """A program of the stack, run as a private instance under the run directory."""

    layer = "?"
    implementation = "?"
    stop_signal = signal.SIGTERM
    ready_timeout = 30.0
    stop_timeout = 15.0

    def __init__(self, name: str, run_dir: Path, host: str, port: int):
        self.name = name
        self.run_dir = run_dir
        self.host = host
        self.port = port
        self.netns: str | None = None  # the network namespace of its host, if any
        self.process: ManagedProcess | None = None

    # -- what a subclass provides -------------------------------------------------------
    @property
    def log_path(self) -> Path:
        """Where the program's output goes."""
        return self.run_dir / "logs" / f"{self.name}.log"

    def prepare(self) -> None:
        """Render configuration and create data directories (idempotent)."""

    def argv(self) -> list[str]:
        """The command line that runs the program in the foreground."""
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        """Environment for the program (None: inherit)."""
        return None

    def cwd(self) -> Path | None:
        """Working directory for the program (None: inherit)."""
        return None

    def user(self) -> str | None:
        """The user to run as (None: the current one)."""
        return None

    def healthy(self) -> bool:
        """One health probe: True when the program answers as it should."""
        raise NotImplementedError

    def version(self) -> str:
        """The program's version, as it reports it."""
        return "?"

    @property
    def address(self) -> str:
        """host:port where the program listens."""
        return f"{self.host}:{self.port}"

    def ports(self) -> list[int]:
        """Every port this program will listen on."""
        return [self.port]

    # -- shared mechanism ----------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self.process.pid if self.process and self.process.running() else None

    def running(self) -> bool:
        """True while the process lives."""
        return bool(self.process and self.process.running())

    def start(self) -> None:
        """Prepare and start the program (does not wait for it to be ready)."""
        self.prepare()
        self.process = ManagedProcess(
            self.argv(),
            self.log_path,
            env=self.env(),
            cwd=self.cwd(),
            user=self.user(),
            stop_signal=self.stop_signal,
            netns=self.netns,
        )
        try:
            self.process.start()
        except OSError as exc:
            raise StackError(self.name, f"could not start {self.argv()[0]}: {exc}") from exc

    def raise_if_exited(self) -> None:
        """Raise ``StackError`` (naming the exit status and the log) if the program exited."""
        if not self.running():
            code = self.process.returncode if self.process else None
            raise StackError(
                self.name,
                f"{self.implementation} exited with status {code} while starting",
                self.log_path,
                detail=tail(self.log_path),
            )

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the health probe passes; raise ``StackError`` if the program dies."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        delay = 0.02
        while True:
            self.raise_if_exited()
            if self.healthy():
                return
            if time.monotonic() > deadline:
                raise StackError(
                    self.name,
                    f"{self.implementation} did not become ready in {timeout or self.ready_timeout:.0f} s",
                    self.log_path,
                    detail=tail(self.log_path),
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def stop(self) -> None:
        """Stop gracefully, then by force; leaves no process of its session behind."""
        if self.process is not None:
            self.process.stop(self.stop_timeout)
            self.process.wait_session_gone()

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Kill the program and its workers at once (for fault drills and tests)."""
        if self.process is not None:
            self.process.kill_group(signum)
            if signum == signal.SIGKILL and self.process.popen is not None:
                self.process.popen.wait(5)

    def status_row(self) -> StatusRow:
        """This program's line in the status table."""
        return StatusRow(
            layer=self.layer,
            implementation=self.implementation,
            version=self.version(),
            address=self.address,
            pid=self.pid,
            log=str(self.log_path),
        )
