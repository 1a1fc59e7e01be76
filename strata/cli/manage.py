"""``strata manage`` and ``strata env``: reach the running stack from outside it.

A management command, a cron job or an import script must see the stack exactly as the
app servers do: the same database and cache, and the Varnish nodes to purge after each
write with their secret. Both commands read what ``strata up`` recorded in the run
directory (``environment.json``, mode 0600). ``docs/design.md``, "One environment for
every process of a site".
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import click

from ..stack.runstate import NoStack, RunState
from .options import run_dir_option

__all__ = ["manage", "env"]


def running_environment(run_dir: Path) -> dict:
    """The recorded environment of the stack running in ``run_dir``, or a clear error."""
    try:
        return RunState.running(run_dir).environment()
    except NoStack as error:
        hint = (
            ""
            if error.starting
            else ("; start it with `strata up` (or name its run directory with --run-dir)")
        )
        raise click.ClickException(f"{error}{hint}") from None


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@run_dir_option()
@click.argument("args", nargs=-1, type=click.UNPROCESSED, required=True)
def manage(run_dir, args):
    """Run a Django management command against the running stack.

    The command gets exactly the app servers' environment: `strata manage
    createsuperuser`, `strata manage shell`, `strata manage import_feed x.csv`. Writes
    purge Varnish as the app servers' do.
    """
    recorded = running_environment(run_dir)
    environment = {**os.environ, **recorded["environment"]}
    python = recorded["python"]
    os.chdir(recorded["directory"])
    os.execve(python, [python, "-m", "django", *args], environment)


@click.command()
@run_dir_option()
@click.option(
    "--format",
    "style",
    type=click.Choice(["shell", "systemd", "json"]),
    default="shell",
    show_default=True,
    help="export lines for a shell or a cron job, an EnvironmentFile for a systemd unit, or JSON.",
)
def env(run_dir, style):
    """Print the app servers' environment: `eval "$(strata env)"` in a shell."""
    recorded = running_environment(run_dir)
    variables = recorded["environment"]
    if style == "json":
        click.echo(json.dumps(recorded, indent=2))
        return
    click.echo(f"# the stack of {run_dir.resolve()}; run commands in {recorded['directory']}")
    click.echo(f"# with {recorded['python']} -m django ...")
    for name, value in sorted(variables.items()):
        if style == "shell":
            click.echo(f"export {name}={shlex.quote(value)}")
        else:
            click.echo(f'{name}="{_systemd_escape(value)}"')


def _systemd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
