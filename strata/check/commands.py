"""Writes through a management command: a process of its own, as a cron job or an import
script runs, that knows only the database and the cache.

Its environment (:func:`writer_environment`) is this process's, without any of the
stack's variables (every ``STRATA_*``, ``DJANGO_*``, ``DATABASE_*``, ``CACHE_URL``), plus
``DATABASE_URL``, ``CACHE_URL``, ``DJANGO_SETTINGS_MODULE`` and ``PYTHONPATH`` from
``RUN/environment.json``: no accelerator list, no purge secret. A stack without a purger
(no invalidation bus: a Memcached pool, or a stack from before it) cannot deliver a
write it did not purge itself, so there the writer also gets ``STRATA_ACCELERATORS`` and
``STRATA_PURGE_SECRET``, and the run says so.

A command write is acknowledged when the command prints a line holding its marker (the
earliest proof that it committed: the demo's ``edit_article`` prints what it wrote after
the commit), or else when it exits with status 0. A command killed by SIGKILL after that
line is still acknowledged (``writer-kill``); any other end (a non-zero exit, a timeout,
killed before the line) leaves the write's outcome unknown.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .history import now

__all__ = [
    "WRITER_VARIABLES",
    "CommandRun",
    "Writer",
    "writer_environment",
]

WRITER_VARIABLES = ("DATABASE_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE", "PYTHONPATH")
"""What a command writer gets from the stack's environment: the database, the cache, and
how to import the settings."""

WITHOUT_BUS = ("STRATA_ACCELERATORS", "STRATA_PURGE_SECRET")
"""Added for a stack that runs no purger: without the bus a writer purges Varnish itself."""

_STACK_PREFIXES = ("STRATA_", "DJANGO_", "DATABASE_")
_STACK_NAMES = ("CACHE_URL", "PYTHONPATH")


def writer_environment(
    record: Mapping, bus: bool, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a command writer: ``base`` (this process's) without the stack's
    variables, plus :data:`WRITER_VARIABLES` from ``record["environment"]`` (what
    ``environment.json`` holds), and :data:`WITHOUT_BUS` too when ``bus`` is False."""
    base = os.environ if base is None else base
    env = {
        name: value
        for name, value in base.items()
        if not name.startswith(_STACK_PREFIXES) and name not in _STACK_NAMES
    }
    stack = record.get("environment") or {}
    wanted = WRITER_VARIABLES if bus else (*WRITER_VARIABLES, *WITHOUT_BUS)
    env.update({name: str(stack[name]) for name in wanted if stack.get(name)})
    return env


@dataclass
class CommandRun:
    """How one command write went."""

    argv: list[str]
    sent: float
    ended: float
    committed: float | None  # when the line with the marker arrived
    returncode: int | None  # None: timed out (then killed)
    output: str = ""  # the last lines of stdout and stderr, for an error message

    @property
    def killed(self) -> bool:
        """True when the process ended by SIGKILL (its own, for writer-kill)."""
        return self.returncode == -signal.SIGKILL

    @property
    def acknowledged(self) -> float | None:
        """When the write is known to have committed, or None."""
        if self.committed is not None:
            return self.committed
        return self.ended if self.returncode == 0 else None

    def problem(self) -> str:
        """Why the write is not acknowledged, in one line."""
        if self.returncode is None:
            return f"timed out after {self.ended - self.sent:.0f} s (killed)"
        if self.killed:
            return "killed before it printed its marker"
        last = self.output.strip().splitlines()[-1:] or [""]
        return f"exit status {self.returncode}" + (f": {last[0][:160]}" if last[0] else "")


@dataclass(frozen=True)
class Writer:
    """Runs ``python -m django <argv>`` in the project's directory with ``env``
    (picklable: it crosses into the client processes)."""

    python: str
    directory: str
    env: dict[str, str] = field(default_factory=dict)
    log: str = ""  # appended: each command, then its output

    @classmethod
    def for_stack(cls, record: Mapping, bus: bool, log: Path, python: str) -> Writer:
        """The writer for the stack that wrote ``record`` (``environment.json``)."""
        return cls(
            python=str(record.get("python") or python),
            directory=str(record.get("directory") or "."),
            env=writer_environment(record, bus),
            log=str(log),
        )

    def run(self, argv: list[str], marker: str, timeout: float) -> CommandRun:
        """Run one command; its marker line, exit status and times."""
        command = [self.python, "-m", "django", *argv]
        sent = now()
        process = subprocess.Popen(
            command,
            cwd=self.directory,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        committed, output, timed_out = _watch(process, marker.encode(), sent + timeout)
        returncode = process.wait()
        run = CommandRun(
            argv, sent, now(), committed, None if timed_out else returncode, output[-2000:]
        )
        if self.log:
            with open(self.log, "a", encoding="utf-8") as log:
                log.write(f"$ manage.py {' '.join(argv)}  -> {returncode}\n{output}")
        return run


def _watch(process: subprocess.Popen, marker: bytes, deadline: float):
    """Read the process's stdout and stderr until both close or ``deadline`` (then kill
    it); when the marker arrived on stdout, whether it timed out, and the output."""
    assert process.stdout is not None and process.stderr is not None
    committed = None
    chunks = {process.stdout: b"", process.stderr: b""}
    timed_out = False
    with selectors.DefaultSelector() as selector:
        for stream in chunks:
            selector.register(stream, selectors.EVENT_READ)
        open_streams = len(chunks)
        while open_streams:
            left = deadline - now()
            if left <= 0:
                timed_out = True
                process.kill()
                break
            for key, _ in selector.select(left):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                chunks[key.fileobj] += data  # type: ignore[index]  # registered streams only
                stdout = key.fileobj is process.stdout
                if committed is None and stdout and marker in chunks[process.stdout]:
                    committed = now()
    for stream in chunks:
        stream.close()
    text = b"".join(chunks.values()).decode("utf-8", "replace")
    return committed, text, timed_out
