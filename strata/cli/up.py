"""``strata up``: run the whole stack in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

from ..stack.appserver import APP_SERVERS, DjangoProject
from ..stack.config import BALANCES, MAX_ACCELERATORS, MAX_HOSTS, StackConfig, demo_project
from ..stack.errors import StackError
from ..stack.hosts import remove_network
from ..stack.process import pid_alive
from ..stack.purger import bus_status
from ..stack.runstate import (
    NoStack,
    RunState,
    clear_state,
    lock_pid,
    release_lock,
    take_lock,
)
from ..stack.stack import Stack
from ..stack.supervisor import Supervisor
from .console import console
from .options import run_dir_option

__all__ = ["up", "down", "status"]


class _Stop(Exception):
    """Raised in the main thread by SIGTERM/SIGINT to unwind into an orderly stop."""


def _project(
    project_dir: Path | None, settings: str | None, wsgi: str | None
) -> tuple[DjangoProject, bool]:
    if project_dir is None and settings is None:
        return demo_project(), True
    if settings is None:
        raise click.UsageError("--project-dir needs --settings (the settings module)")
    directory = (project_dir or Path.cwd()).resolve()
    if not directory.is_dir():
        raise click.UsageError(f"--project-dir {directory} is not a directory")
    return DjangoProject(directory, settings, wsgi), False


def status_table(stack: Stack) -> Table:
    """The table of layers that ``strata up`` prints once everything answers."""
    table = Table(title="Strata stack", title_justify="left")
    for column in ("layer", "implementation", "version", "address", "pid", "log"):
        table.add_column(column)
    for row in stack.status_rows():
        implementation = row.implementation + (f" ({row.note})" if row.note else "")
        table.add_row(
            row.layer,
            implementation,
            row.version,
            row.address,
            str(row.pid) if row.pid else "-",
            row.log,
        )
    return table


def _fail(error: StackError) -> NoReturn:
    console.print(f"[bold red]error[/] {error}")
    if error.detail:
        console.print("[dim]" + error.detail.replace("[", r"\[") + "[/]")
    raise SystemExit(1)


@click.command()
@click.option(
    "--project-dir",
    type=click.Path(path_type=Path),
    help="Directory of the Django project (default: the demo).",
)
@click.option("--settings", help="Settings module, e.g. mysite.settings.")
@click.option(
    "--wsgi",
    help="WSGI application, e.g. mysite.wsgi:application (default: the WSGI_APPLICATION setting).",
)
@run_dir_option("Where configs, data and logs go.")
@click.option(
    "--port",
    type=int,
    default=8000,
    show_default=True,
    help="Public port; the others follow from it.",
)
@click.option(
    "--app-servers",
    type=click.IntRange(1, 64),
    default=os.cpu_count() or 2,
    show_default=True,
    help="How many app-server instances form the pool.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="Worker processes per app server.",
)
@click.option(
    "--app-server", type=click.Choice(list(APP_SERVERS)), default="uwsgi", show_default=True
)
@click.option(
    "--pool",
    type=click.Choice(["haproxy", "varnish"]),
    default="haproxy",
    show_default=True,
    help="Who balances the app servers behind Varnish (see docs/stack.md).",
)
@click.option(
    "--accelerators",
    type=click.IntRange(1, MAX_ACCELERATORS),
    default=1,
    show_default=True,
    help="Varnish nodes behind the load balancer; writes purge every one.",
)
@click.option(
    "--balance",
    type=click.Choice(BALANCES),
    default="roundrobin",
    show_default=True,
    help="How the load balancer spreads requests over the Varnish nodes: each caches "
    "everything (roundrobin), or each page lives on one node (uri-consistent).",
)
@click.option(
    "--cache", type=click.Choice(["redis", "memcached"]), default="redis", show_default=True
)
@click.option(
    "--hosts",
    type=click.IntRange(2, MAX_HOSTS),
    default=None,
    help="Spread the stack over hosts: two load balancers, N accelerator hosts, N app hosts, "
    "a cache host (N memcached nodes with --cache memcached) and a database host, each a "
    "network namespace on a private bridge (docs/hosts.md).",
)
@click.option(
    "--loopback",
    is_flag=True,
    help="With --hosts: give each host a loopback address (127.0.0.2, ...) instead of a "
    "network namespace (the default without root).",
)
@click.option(
    "--pgbouncer",
    is_flag=True,
    help="Put pgbouncer (transaction mode) between the app servers and PostgreSQL "
    "(always with --hosts).",
)
@click.option(
    "--tls/--no-tls", default=False, help="Terminate TLS at HAProxy (self-signed certificate)."
)
@click.option(
    "--embedded", is_flag=True, help="SQLite, a file cache and one app server: no system programs."
)
@click.option(
    "--exporters/--no-exporters",
    default=True,
    help="Serve every layer's counters for Prometheus (exporters, HAProxy's metrics "
    "frontend; run-dir/config/prometheus.yml lists them). See docs/monitoring.md.",
)
@click.option(
    "--seed/--no-seed", default=True, help="Seed the demo's data when its database is empty."
)
@click.option(
    "--edge-ttl",
    type=click.IntRange(0, 86400),
    default=None,
    help="Seconds Varnish keeps a shared page (s-maxage); writes purge it at once. "
    "Default: the settings' STRATA['EDGE_TTL'].",
)
@click.option(
    "--check-path",
    default="/",
    show_default=True,
    help="A page that answers anonymous visitors with 2xx or 3xx: the stack is up when it "
    "does through every entrance.",
)
def up(
    project_dir,
    settings,
    wsgi,
    run_dir,
    port,
    app_servers,
    workers,
    app_server,
    pool,
    accelerators,
    balance,
    cache,
    hosts,
    loopback,
    pgbouncer,
    tls,
    embedded,
    exporters,
    seed,
    edge_ttl,
    check_path,
):
    """Start the whole stack for a Django project and keep it running until Ctrl-C."""
    try:
        project, is_demo = _project(project_dir, settings, wsgi)
    except StackError as error:
        _fail(error)
    setup = [["migrate", "--noinput"]]
    if is_demo and seed:
        setup.append(["seed_newsroom", "--if-empty"])
    run_dir = run_dir.resolve()
    if loopback and not hosts:
        raise click.UsageError("--loopback goes with --hosts N")
    if not check_path.startswith("/"):
        raise click.UsageError(f"--check-path must start with /, not {check_path!r}")
    config = StackConfig(
        run_dir=run_dir,
        project=project,
        port=port,
        app_servers=app_servers,
        workers=workers,
        app_server=app_server,
        pool=pool,
        accelerators=accelerators,
        balance=balance,
        cache=cache,
        tls=tls,
        embedded=embedded,
        setup_commands=setup,
        edge_ttl=edge_ttl,
        check_path=check_path,
        hosts=hosts or 0,
        namespaces=False if loopback else None,
        pgbouncer=pgbouncer or bool(hosts),
        exporters=exporters,
    )
    try:
        take_lock(run_dir)
    except StackError as error:
        _fail(error)
    except OSError as error:
        _fail(StackError("strata up", f"cannot use the run directory {run_dir}: {error}"))

    def on_signal(signum, frame):
        raise _Stop(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    stack = None
    try:
        stack = Stack(config)
        with console.status("starting the stack") as spinner:
            stack.start(progress=lambda message: spinner.update(message))
        console.print(status_table(stack))
        for layer in stack.embedded:
            console.print(f"[yellow]note[/] {layer.layer}: {layer.implementation} ({layer.reason})")
        for note in stack.notes:
            console.print("[yellow]note[/] " + note.replace("[", r"\["))
        console.print(
            f"\nOpen [bold]{stack.url}[/]" + (f"  or  {stack.tls_url}" if stack.tls_url else "")
        )
        for other in stack.urls[1:]:
            console.print(f"  or [bold]{other}[/] (another load balancer)")
        console.print("Ctrl-C stops everything.")
        _supervisor(stack).run()
    except StackError as error:
        if stack is not None:
            stack.stop()
        release_lock(run_dir)
        _fail(error)
    except _Stop as stop:
        console.print(f"\n{stop.args[0]}: stopping the stack")
    finally:
        # Ignore further signals while stopping: a second Ctrl-C must not leave orphans.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        if stack is not None:
            for problem in stack.stop():
                console.print(f"[red]warning[/] {problem}")
        release_lock(run_dir)
        for s, handler in previous.items():
            signal.signal(s, handler)
    console.print("stopped.")


def _supervisor(stack: Stack) -> Supervisor:
    """The supervisor of ``strata up``, telling the terminal what it restarts."""

    def exited(program, code):
        console.print(
            f"[yellow]{program.name} ({program.implementation}) exited with status {code}; "
            f"restarting[/] (log: {program.log_path})"
        )

    def failed(program, why, delay):
        console.print(f"[red]{program.name}: {why}[/]; next try in {delay:.0f} s")

    def back(program):
        console.print(f"{program.name} is back (pid {program.pid})")

    return Supervisor(stack, on_exit=exited, on_failure=failed, on_back=back)


@click.command()
@run_dir_option()
@click.option("--timeout", type=float, default=30.0, show_default=True)
def down(run_dir, timeout):
    """Stop the stack that `strata up` runs for this run directory."""
    run_dir = run_dir.resolve()
    pid = lock_pid(run_dir)
    if pid is None:
        raise click.ClickException(f"no stack is running for {run_dir}")
    if not pid_alive(pid):
        release_lock(run_dir)
        try:
            network = RunState.recorded(run_dir).network
        except NoStack:
            network = None
        if network:
            remove_network(network)  # strata up was killed: its hosts are left
            clear_state(run_dir)
            console.print("removed the hosts' network namespaces left by a killed strata up")
        raise click.ClickException(f"no stack is running for {run_dir} (stale pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        raise click.ClickException(f"strata up (pid {pid}) did not stop in {timeout:.0f} s")
    console.print("stopped.")


@click.command()
@run_dir_option()
def status(run_dir):
    """Show what the running stack serves, layer by layer."""
    try:
        state = RunState.running(run_dir)
    except NoStack as error:
        raise click.ClickException(str(error)) from None
    table = Table(title=f"Strata stack (strata up pid {state.pid})", title_justify="left")
    for column in ("layer", "implementation", "version", "address", "pid", "alive"):
        table.add_column(column)
    for row in state.rows:
        alive = "-" if not row["pid"] else ("yes" if pid_alive(row["pid"]) else "[red]no[/]")
        table.add_row(
            row["layer"],
            row["implementation"],
            row["version"],
            row["address"],
            str(row["pid"] or "-"),
            alive,
        )
    console.print(table)
    if state.named("purger"):
        # Only a stack with a purger has a bus (Redis); reading it starts Django once.
        console.print(bus_table(bus_status(state.environment())))
    console.print(f"Open {state.url}")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def bus_table(figures: dict | None) -> RenderableType:
    """The "bus" section of ``strata status``: the log, the lease, and per accelerator
    what the purger delivered (from ``strata.bus.bus_log().status()``)."""
    if figures is None:
        return "bus: off (the project's cache holds no log; the app processes purge)"
    if "error" in figures:
        return f"[red]bus: {escape(str(figures['error']))}[/]"
    lease = figures.get("lease")
    holder = (
        f"{escape(str(lease['holder']))} (lease {lease['ttl']:.1f} s)" if lease else "[red]none[/]"
    )
    standing_by = [p for p in figures.get("purgers") or [] if not lease or p != lease["holder"]]
    stats = figures.get("stats") or {}
    lines = [
        f"Invalidation bus: {figures.get('length', 0)} entries, head "
        f"{_seconds(figures.get('head_age'))} old",
        f"  delivering: {holder}"
        + (f"; standing by: {escape(', '.join(standing_by))}" if standing_by else ""),
        f"  {stats.get('failures', 0)} failures, {stats.get('retries', 0)} retries, "
        f"{stats.get('full_purges', 0)} full purges",
    ]
    if stats.get("last_failure"):
        lines.append(f"  last failure: {escape(str(stats['last_failure']))}")
    table = Table()
    for column in ("accelerator", "delivered", "behind", "lag"):
        table.add_column(column)
    for node, seen in sorted((figures.get("nodes") or {}).items()):
        behind = int(seen.get("behind") or 0)
        table.add_row(
            escape(node),
            seen.get("delivered") or "-",
            f"[red]{behind}[/]" if behind else "0",
            _seconds(seen.get("lag")),
        )
    return Group(*lines, table)
