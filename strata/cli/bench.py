"""``strata bench``: fill the seed's response-time table from the running stack."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import click
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from ..bench.endpoints import Endpoints, from_run_dir, from_url
from ..bench.load import choose_engine
from ..bench.report import breakdown_tables, notes, summary_table, write_reports
from ..bench.run import BenchPlan, default_paths, run_bench
from ..bench.tiers import TIERS, tiers_named
from ..stack.runstate import NoStack, RunState
from ..top import Reading, take_reading
from .console import console
from .options import run_dir_option, running_stack, start_options

__all__ = ["bench"]


class _RichProgress:
    """The benchmark's progress as two Rich bars: tiers done, and the current phase."""

    def __init__(self, progress: Progress, steps: int):
        self.progress = progress
        self.overall = progress.add_task("tiers", total=steps, info="")
        self.current = progress.add_task("starting", total=None, info="")
        self.seconds: float | None = None

    def phase(self, text: str, seconds: float | None = None) -> None:
        self.seconds = seconds
        self.progress.reset(self.current, total=seconds, completed=0, description=text, info="")

    def tick(self, elapsed: float, responses: int) -> None:
        info = f"{responses:,} responses" if responses >= 0 else ""
        done = min(elapsed, self.seconds) if self.seconds else None
        self.progress.update(self.current, completed=done, info=info)

    def step_done(self) -> None:
        self.progress.advance(self.overall)


def _split_urls(urls: tuple[str, ...]) -> tuple[list[str], tuple[str, int] | None]:
    paths, address = [], None
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme or parts.netloc:
            if parts.scheme != "http" or not parts.hostname:
                raise click.BadParameter(f"{url}: only http:// URLs or paths", param_hint="URL")
            this = (parts.hostname, parts.port or 80)
            if address is not None and this != address:
                raise click.BadParameter(
                    "all URLs must be on one stack (one host and port)", param_hint="URL"
                )
            address = this
            path = parts.path or "/"
            paths.append(path + (f"?{parts.query}" if parts.query else ""))
        elif url.startswith("/"):
            paths.append(url)
        else:
            raise click.BadParameter(
                f"{url}: give a path (/articles/x/) or a URL", param_hint="URL"
            )
    return paths, address


def _endpoints(
    address: tuple[str, int] | None, run_dir: Path, secret: str | None, pool: str | None
) -> Endpoints:
    """The stack to measure: the one in ``run_dir``, unless the URLs name another."""
    try:
        endpoints = from_run_dir(run_dir, secret)
        if address is None or address == (endpoints.host, endpoints.port):
            return endpoints
    except NoStack as error:
        if address is None:  # gone since it was found
            raise click.ClickException(str(error)) from None
    try:
        return from_url(f"http://{address[0]}:{address[1]}/", pool, secret)
    except NoStack as bad:
        raise click.ClickException(str(bad)) from None


@click.command()
@click.argument("urls", nargs=-1, metavar="[URL ...]")
@run_dir_option("The run directory of the stack that `strata up` runs.")
@click.option(
    "--seconds",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Measured seconds per page and tier (wrk rounds up to whole seconds).",
)
@click.option(
    "--connections",
    type=click.IntRange(1, 1000),
    default=8,
    show_default=True,
    help="Concurrent connections.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds of load before each measurement, discarded.",
)
@click.option(
    "--tiers",
    default=",".join(t.name for t in TIERS),
    show_default=True,
    help="Which tiers to measure, comma-separated.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the JSON, PNG and HTML go (default: RUN_DIR/bench).",
)
@click.option(
    "--python-load", is_flag=True, help="Use the Python load generator even if wrk is installed."
)
@click.option(
    "--secret",
    default=None,
    help="The stack's purge secret, for the warm and cold tiers (default: RUN_DIR/purge-secret).",
)
@click.option(
    "--pool",
    metavar="HOST:PORT",
    default=None,
    help="The app-server pool of a stack given by URL (default: its port + 90).",
)
@start_options
@click.pass_context
def bench(
    ctx,
    urls,
    run_dir,
    seconds,
    connections,
    warmup,
    tiers,
    out,
    python_load,
    secret,
    pool,
    start,
    port,
):
    """Measure each page at each tier of the stack, beside the seed's response times.

    Tiers: accelerator (a Varnish hit), page (a page-cache hit, Varnish bypassed), warm
    (page cache off, query and fragment caches warm) and cold (every Strata cache off;
    the database's own buffers stay warm). Only responses whose headers prove the tier
    answered are counted. URLs are paths (default: / and one article from the home
    page) or http:// URLs of another stack.
    """
    try:
        chosen = tiers_named(tiers)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--tiers") from None
    paths, address = _split_urls(urls)
    # A stack named by URL is measured as it is; only the run directory's is started.
    stack = contextlib.nullcontext() if address else running_stack(run_dir, start, port, "bench")
    with stack as started:
        endpoints = _endpoints(address, run_dir, secret, pool)
        if started is not None:
            endpoints.source = f"started by strata bench --start in {started.run_dir}"
        code = _bench(
            endpoints,
            paths,
            chosen,
            seconds,
            warmup,
            connections,
            python_load,
            out or run_dir / "bench",
            _metrics_reader(run_dir, endpoints),
        )
    ctx.exit(code)


def _metrics_reader(run_dir: Path, endpoints: Endpoints) -> Callable[[], Reading] | None:
    """Reads the metrics of the stack in ``run_dir`` (what ``strata top`` shows), when that
    is the stack measured; None for a stack given by URL."""
    try:
        state = RunState.running(run_dir)
    except NoStack:
        return None
    if (state.host, state.port) != (endpoints.host, endpoints.port):
        return None
    return lambda: take_reading(state, health=False)


def _bench(
    endpoints, paths, tiers, seconds, warmup, connections, python_load, out_dir, read_metrics=None
) -> int:
    if not paths:
        paths = default_paths(endpoints)
    engine = choose_engine(python_load, threads=min(connections, os.cpu_count() or 2))
    plan = BenchPlan(
        endpoints=endpoints,
        paths=paths,
        tiers=tiers,
        engine=engine,
        seconds=seconds,
        warmup=warmup,
        connections=connections,
        read_metrics=read_metrics,
    )
    label = f"[bold yellow]{engine.label}[/]" if engine.is_fallback else engine.label
    console.print(
        f"strata bench: {', '.join(paths)} at {endpoints.host}:{endpoints.port} "
        f"({len(paths) * len(tiers)} page-tiers, {seconds:g} s each) with {label}; "
        "Ctrl-C stops with partial results"
    )
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        result = run_bench(plan, _RichProgress(progress, len(plan.paths) * len(plan.tiers)))
    # A second Ctrl-C must not lose what the first one kept.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        console.print(summary_table(result))
        for line in notes(result):
            console.print(f"  {line}", markup=False)
        for table, lines in breakdown_tables(result):
            console.print(table)
            for line in lines:
                console.print(f"  {line}", markup=False)
        try:
            written, skipped = write_reports(result, out_dir)
        except OSError as error:
            raise click.ClickException(f"cannot write the report in {out_dir}: {error}") from None
        for line in skipped:
            console.print(f"[yellow]note[/] {line}")
        for kind, path in written.items():
            console.print(f"{kind}: {path}")
    finally:
        signal.signal(signal.SIGINT, previous)
    return 130 if result.interrupted else 0
