"""Entry point of the ``strata`` command."""

from __future__ import annotations

import click

from .. import __version__
from .bench import bench
from .check import check
from .config import config
from .manage import env, manage
from .top import top
from .up import down, status, up


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="strata")
def cli() -> None:
    """Run, configure and measure the High Performance Django stack."""


cli.add_command(up)
cli.add_command(down)
cli.add_command(status)
cli.add_command(manage)
cli.add_command(env)
cli.add_command(bench)
cli.add_command(check)
cli.add_command(config)
cli.add_command(top)


def main() -> None:
    """Console-script entry point.

    Every option can also come from the environment: ``STRATA_UP_PORT=9000 strata up``.
    """
    cli(auto_envvar_prefix="STRATA")
