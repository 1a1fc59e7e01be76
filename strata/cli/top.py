"""``strata top``: a live view of the running stack, tier by tier, refreshed every second.

Each refresh reads every source again (:func:`strata.top.take_reading`) and shows what
happened since the last one (:func:`strata.top.compare`): requests per second, hit
ratio and p50/p99 per tier and program, the purges and the invalidation bus, and each
program's health. A source that does not answer shows as down; the view goes on.
Ctrl-C (or SIGTERM) ends it with status 0.
"""

from __future__ import annotations

import io
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import click
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..stack.runstate import NoStack, RunState
from ..top import Figures, Row, compare, take_reading
from .console import console
from .options import run_dir_option

__all__ = ["top", "render"]

TIER_ORDER = ("load balancer", "accelerator", "app server", "query cache", "purges", "bus")
"""The order a request meets the tiers, then what keeps them fresh."""

STATE_EVERY = 5.0
"""Seconds between readings of ``state.json`` (the supervisor rewrites it after a restart)."""


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}{unit}"
    if value >= 10:
        return f"{value:.1f}{unit}"
    return f"{value:.2f}{unit}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _status(row: Row) -> str:
    return "[green]up[/]" if row.up else "[bold red]down[/]"


def tiers_table(figures: Figures) -> Table:
    """Per tier and program: status, req/s, hit ratio, p50, p99 and a note."""
    table = Table(box=box.SIMPLE_HEAD, expand=False, pad_edge=False)
    table.add_column("tier")
    table.add_column("name")
    table.add_column("status")
    table.add_column("req/s", justify="right")
    table.add_column("hit ratio", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p99", justify="right")
    table.add_column("", overflow="fold", max_width=70)
    tiers = [t for t in TIER_ORDER if figures.tier(t)]
    tiers += sorted({row.tier for row in figures.rows} - set(tiers))
    for tier in tiers:
        rows = figures.tier(tier)
        for position, row in enumerate(rows):
            table.add_row(
                tier if position == 0 else "",
                escape(row.name),
                _status(row),
                _number(row.rps),
                _ratio(row.hit_ratio),
                _number(row.p50_ms, " ms"),
                _number(row.p99_ms, " ms"),
                escape(row.note),
            )
    return table


def health_line(figures: Figures) -> Text:
    """Each program of the stack, green when its pid and probe answer, red (and why)
    when not: one line, wrapped."""
    line = Text("programs: ", style="bold")
    for index, health in enumerate(figures.health):
        if index:
            line.append("  ")
        if health.ok:
            line.append(f"{health.name} ok", style="green")
        else:
            line.append(f"{health.name} down ({health.detail})", style="bold red")
    return line


def render(
    state: RunState, figures: Figures | None, note: str = "", live: bool = True
) -> RenderableType:
    """The whole screen: a heading, the tiers, the programs and where figures came from."""
    heading = Text.from_markup(
        f"[bold]strata top[/] {escape(state.url)} — strata up pid {state.pid}, "
        f"{escape(str(state.run_dir))} — {datetime.now():%H:%M:%S}"
    )
    if figures is None:
        return Group(heading, Text("reading the stack...", style="dim"))
    parts: list[RenderableType] = [
        heading,
        Text(
            f"over the last {figures.seconds:.1f} s" + ("; Ctrl-C quits" if live else ""),
            style="dim",
        ),
        tiers_table(figures),
        health_line(figures),
    ]
    sources = sorted({s for row in figures.rows for s in row.source.split(", ") if s})
    if sources:
        parts.append(Text("sources: " + "; ".join(sources), style="dim"))
    if note:
        parts.append(Text.from_markup(note))
    return Group(*parts)


@click.command()
@run_dir_option()
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2, max=3600),
    default=1.0,
    show_default=True,
    help="Seconds between readings.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Print one reading (the figures over one --interval) and exit: for scripts.",
)
@click.option(
    "--svg",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also save the last screen as an SVG picture here when leaving.",
)
def top(run_dir, interval, once, svg):
    """A live view of the running stack: per tier req/s, hit ratio, p50/p99, the purges,
    the invalidation bus and each program's health, refreshed every --interval seconds."""
    try:
        state = RunState.running(run_dir)
    except NoStack as error:
        raise click.ClickException(str(error)) from None
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        screen, code = _run(state, run_dir, interval, once, stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if svg is not None and screen is not None:
        _save_svg(screen, svg)
    if code:
        raise SystemExit(code)


def _run(
    state: RunState, run_dir: Path, interval: float, once: bool, stop: threading.Event
) -> tuple[RenderableType | None, int]:
    """Read, wait, read and show, until ``stop`` (or once); the last screen and the status."""
    before = take_reading(state)
    if once:
        if stop.wait(interval):
            return None, 0
        shown = render(state, compare(before, take_reading(state)), live=False)
        console.print(shown)
        return shown, 0
    screen: RenderableType = render(state, None)
    checked = time.monotonic()
    with Live(screen, console=console, refresh_per_second=4, transient=False) as live:
        while not stop.wait(max(0.0, interval - (time.monotonic() - before.at))):
            if time.monotonic() - checked >= STATE_EVERY:
                checked = time.monotonic()
                try:
                    state = RunState.running(run_dir)
                except NoStack as gone:
                    if not gone.starting:
                        live.update(render(state, None, f"[bold red]{escape(str(gone))}[/]"))
                        console.print(f"[red]strata top:[/] {escape(str(gone))}")
                        return None, 1
            # /-/timing/ only stands in for /-/metrics: not read while an app server serves it.
            after = take_reading(state, timing=not any(a.up for a in before.metrics.values()))
            if stop.is_set():
                break
            screen = render(state, compare(before, after))
            live.update(screen)
            before = after
    return screen, 0


def _save_svg(screen: RenderableType, path: Path) -> None:
    """Draw ``screen`` again on a recording console, and save it as SVG."""
    recorder = Console(record=True, width=150, file=io.StringIO(), highlight=False)
    recorder.print(screen)
    try:
        recorder.save_svg(str(path), title="strata top")
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error}") from None
    console.print(f"picture: {path}")
