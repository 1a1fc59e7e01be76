"""``strata config``: render a production stack's configuration from an inventory."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ..config import (
    InventoryError,
    OutputError,
    check_output,
    load_inventory,
    render_inventory,
    write_rendering,
)
from .console import console

__all__ = ["config"]


def _say(text: str) -> None:
    # Paths stay on one line, whatever the terminal's width: people copy them.
    console.print(text, soft_wrap=True)


@click.command()
@click.argument("inventory", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("strata-config"),
    show_default=True,
    help="The directory to write (hosts/<name>/..., README.md, secrets.env).",
)
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Check the files with haproxy -c, varnishd -C and Python's compiler, where installed.",
)
def config(inventory: Path, out: Path, check: bool) -> None:
    """Render every host's configuration from an INVENTORY file (TOML, see docs/config.md)."""
    try:
        parsed = load_inventory(inventory)
    except InventoryError as error:
        count = len(error.problems)
        raise click.ClickException(
            f"{count} problem{'s' if count > 1 else ''} in the inventory:\n{error}"
        ) from None
    rendering = render_inventory(parsed)
    try:
        report = write_rendering(rendering, out)
    except OutputError as error:
        raise click.ClickException(str(error)) from None

    table = Table(title=f"{parsed.site.name}: {len(rendering.hosts)} hosts", title_justify="left")
    for column in ("host", "address", "roles", "files"):
        table.add_column(column)
    for entry in rendering.hosts:
        table.add_row(
            entry.host.name,
            entry.host.address,
            ", ".join(entry.roles),
            "\n".join(f.path for f in entry.files),
        )
    console.print(table)
    _say(f"Wrote {len(report.files)} files to {out}/ (index: {out}/README.md).")
    if report.secrets_created:
        _say(
            f"Generated {', '.join(report.secrets_created)} into {report.secrets_path} "
            "(mode 0600): keep it out of version control; no rendered file holds a secret."
        )
    else:
        _say(f"Kept the secrets in {report.secrets_path} (mode 0600).")
    if report.self_signed_pem:
        _say(f"Self-signed certificate and key: {report.self_signed_pem} (mode 0600).")

    if not check:
        return
    results = check_output(report.files)
    failed = [r for r in results if r.ok is False]
    for result in results:
        mark = {True: "[green]ok[/]", False: "[red]FAILED[/]", None: "[yellow]skipped[/]"}
        shown = result.path.relative_to(out) if result.path.is_relative_to(out) else result.path
        note = f" ({result.message})" if result.message else ""
        _say(f"{mark[result.ok]} {result.tool} {shown}{note}")
    if failed:
        raise click.ClickException(
            f"{len(failed)} rendered file{'s' if len(failed) > 1 else ''} failed "
            "their check (above); the files are written for inspection"
        )
