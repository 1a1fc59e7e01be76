"""A program started in the foreground as a direct child, in a session of its own.

Daemonised programs are re-parented to PID 1, which on some machines reaps them late, so
a dead daemon still answers ``kill -0``. Keeping every program a direct child means
``Popen.poll()`` tells the truth, and a session per program means stopping it also stops
its workers (``killpg``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["ManagedProcess", "tail", "live_session_members", "pid_alive"]

log = logging.getLogger("strata.stack")


def tail(path: Path, lines: int = 15) -> str:
    """Return the last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1


def _die_with_parent(signum: int, netns: str | None = None, user: str | None = None):
    """A ``preexec_fn`` asking the kernel to signal the child when its parent dies.

    Then even a ``strata up`` that is killed with SIGKILL leaves no program behind. With
    ``netns`` the child first enters that network namespace (a host of a multi-host
    stack), and only then becomes ``user``: entering a namespace needs root.
    """

    def preexec() -> None:
        if netns is not None:
            from .hosts import enter_namespace

            enter_namespace(netns)
            if user is not None:
                entry = pwd.getpwnam(user)
                os.setgroups([])
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return preexec


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def live_session_members(session_id: int) -> list[int]:
    """Pids of the processes of session ``session_id`` that are alive (not zombies)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().decode("ascii", "replace")
        except OSError:
            continue
        # Fields after the ")" that ends the command name: state ppid pgrp session ...
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == session_id:
            members.append(int(entry.name))
    return members


class ManagedProcess:
    """One running program: its ``Popen``, its log file, and how to stop it."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        netns: str | None = None,
    ):
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.netns = netns
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The process id while it runs (or until it is reaped)."""
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        """Start the program; its stdout and stderr go to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # In a namespace, _die_with_parent drops to the user after entering it (setns needs root).
        as_user = self.user if self.netns is None else None
        with open(self.log_path, "ab") as logfile:
            popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_die_with_parent(self.stop_signal, self.netns, self.user),
                user=as_user,
                group=as_user,
                extra_groups=None if as_user is None else [],
            )
        self.popen = popen
        log.debug("started pid %s: %s", popen.pid, " ".join(self.argv))

    def running(self) -> bool:
        """True while the program has not exited."""
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: killed by that signal)."""
        return self.popen.poll() if self.popen else None

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the program itself (not to its children)."""
        if self.popen is not None and self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signum)

    def kill_group(self, signum: int = signal.SIGKILL) -> None:
        """Send ``signum`` to the program and every process of its session."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop gracefully with the program's stop signal, then by force; reap it.

        Whatever is left of its session afterwards (workers that outlived their master)
        is killed too, so nothing keeps running or holding a port.
        """
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("pid %s did not stop in %.0f s; killing it", self.popen.pid, timeout)
                self.kill_group(signal.SIGKILL)
                self.popen.wait(5)
        self.kill_group(signal.SIGKILL)
        return self.popen.returncode

    def wait_session_gone(self, timeout: float = 5.0) -> bool:
        """Wait until no process of this program's session is left."""
        if self.popen is None:
            return True
        deadline = time.monotonic() + timeout
        while live_session_members(self.popen.pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
