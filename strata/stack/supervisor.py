"""Keep a started stack running: restart a program that died, with backoff.

A program whose hold file exists (``RUN/hold/<name>``, written by ``strata check``'s
fault drills) is left stopped until the file goes away. After each restart the stack's
``state.json`` is written again, so readers see the new pid.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import StackError
from .program import Program
from .stack import Stack

__all__ = ["Supervisor"]

POLL_SECONDS = 0.2
FIRST_BACKOFF = 0.5  # doubled before the first retry's wait: 1 s, 2 s, 4 s ...
MAX_BACKOFF = 30.0


class Supervisor:
    """Watches the programs of one stack; :meth:`check` restarts those that died."""

    def __init__(
        self,
        stack: Stack,
        on_exit: Callable[[Program, int | None], None] = lambda program, code: None,
        on_failure: Callable[[Program, str, float], None] = lambda program, why, delay: None,
        on_back: Callable[[Program], None] = lambda program: None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stack = stack
        self.clock = clock
        self.on_exit = on_exit  # a program exited (with its status); a restart follows
        self.on_failure = on_failure  # a restart failed: why, and the wait before the next
        self.on_back = on_back  # a program runs again
        self._backoff: dict[str, float] = {}
        self._next_try: dict[str, float] = {}

    def check(self) -> None:
        """Restart every program that is not running, unless held or backing off."""
        for program in self.stack.programs:
            now = self.clock()
            if program.running() or now < self._next_try.get(program.name, 0):
                continue
            if self.stack.hold_path(program).exists():
                continue
            self.on_exit(program, program.process.returncode if program.process else None)
            try:
                self.stack.restart(program)
            except Exception as error:  # whatever failed, the rest of the stack keeps running
                delay = min(self._backoff.get(program.name, FIRST_BACKOFF) * 2, MAX_BACKOFF)
                self._backoff[program.name] = delay
                self._next_try[program.name] = now + delay
                self.on_failure(
                    program, str(error) if isinstance(error, StackError) else repr(error), delay
                )
            else:
                self._backoff.pop(program.name, None)
                self.stack.write_state()
                self.on_back(program)

    def run(self) -> None:
        """Check forever (until the calling thread is interrupted, e.g. by a signal)."""
        while True:
            time.sleep(POLL_SECONDS)
            self.check()
