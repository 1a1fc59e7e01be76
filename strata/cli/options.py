"""What the commands that work on a stack share: the ``--run-dir`` option, ``--start``
and ``--port`` for a stack started on demand, and :func:`running_stack`, which finds
the stack or starts it (the same ``strata up`` a person runs) and stops it after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ..stack.errors import StackError
from ..stack.launch import StartedStack, start_stack
from ..stack.runstate import NoStack, RunState
from .console import console

__all__ = ["run_dir_option", "start_options", "running_stack"]


def run_dir_option(help: str = "The run directory of the stack (strata up --run-dir).") -> Callable:
    """``--run-dir``: where ``strata up`` keeps its configs, data, logs and state."""
    return click.option(
        "--run-dir",
        type=click.Path(path_type=Path),
        default=Path(".strata"),
        show_default=True,
        help=help,
    )


def start_options(command: Callable) -> Callable:
    """``--start`` and ``--port``: start the demo stack when none runs, stop it after."""
    command = click.option(
        "--port", type=int, default=8000, show_default=True, help="Base port for --start."
    )(command)
    return click.option(
        "--start",
        is_flag=True,
        help="Start `strata up` (the demo) in --run-dir when no stack runs there; stop it after.",
    )(command)


@contextmanager
def running_stack(
    run_dir: Path,
    start: bool,
    port: int,
    command: str,
    error: type[click.ClickException] = click.ClickException,
) -> Iterator[StartedStack | None]:
    """The stack in ``run_dir`` runs inside this block: it ran already (yields None), or
    ``--start`` started it (yields it; it stops when the block ends). Otherwise ``error``
    says, in one line, how to start one."""
    try:
        RunState.running(run_dir)
    except NoStack as missing:
        if missing.starting or not start:
            hint = (
                ""
                if missing.starting
                else f"; start one with `strata up --run-dir {run_dir}` "
                f"(or run `strata {command} --start`)"
            )
            raise error(f"{missing}{hint}") from None
    else:
        yield None
        return
    try:
        with console.status("starting the stack") as spinner:
            started = start_stack(run_dir, port, progress=spinner.update)
    except StackError as failed:
        raise error(str(failed)) from None
    console.print(f"started strata up (pid {started.pid}) in {started.run_dir}")
    try:
        yield started
    finally:
        with console.status(f"stopping strata up (pid {started.pid})"):
            warning = started.stop()
        if warning:
            console.print(f"[yellow]warning[/] {warning}")
