"""``strata check``: mixed traffic, a fault schedule and a freshness checker, on the stack
that ``strata up`` runs."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from ..check.faults import FAULTS
from ..check.report import report_data, summary_table, verdict_lines, write_report
from ..check.run import CheckError, CheckPlan, run_check
from ..check.scenario import DEMO_SOURCE, ScenarioError, demo_scenario, load_scenario
from ..check.schedule import ScheduleError, read_schedule
from ..check.target import Target
from ..stack.runstate import NoStack
from ..top import take_reading
from ..top.report import Watch
from .console import console
from .options import run_dir_option, running_stack, start_options

__all__ = ["check"]


class _Fatal(click.ClickException):
    """A mistake or a missing stack: one line, exit status 2."""

    exit_code = 2


def parse_faults(value: str) -> tuple[list[str], dict]:
    """``--faults``: ``all``, ``none``, a comma list, or a TOML file with ``faults = [...]``
    (and optionally ``phase_seconds``, ``hold_share``). Returns the names and the file's
    other settings."""
    text = value.strip()
    if text.endswith(".toml") or Path(text).is_file():
        try:
            schedule = read_schedule(Path(text))
        except ScheduleError as error:
            raise click.BadParameter(str(error)) from None
        return schedule.faults, schedule.settings
    if text in ("", "all"):
        return list(FAULTS), {}
    if text == "none":
        return [], {}
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in FAULTS:
            raise click.BadParameter(
                f"unknown fault {name!r} (known: {', '.join(FAULTS)}, or all, none)"
            )
    if len(set(names)) != len(names):
        raise click.BadParameter("a fault is named twice")
    return names, {}


@click.command()
@run_dir_option("The run directory of the stack that `strata up` runs.")
@start_options
@click.option(
    "--scenario",
    "scenario_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A TOML scenario for another site (default: the demo's, built in; see docs/check.md).",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds of the baseline phase (traffic, no fault).",
)
@click.option(
    "--faults",
    default="all",
    show_default=True,
    help=f"Comma list ({', '.join(FAULTS)}), all, none, or a TOML file with faults = [...].",
)
@click.option(
    "--phase-seconds",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds of each fault's phase (traffic throughout)  [default: 20]",
)
@click.option(
    "--clients",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Client processes, each with its own connections.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=1),
    default=100.0,
    show_default=True,
    help="Requests per second, all clients together (clients go no faster).",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Seed of the clients' choices."
)
@click.option(
    "--window",
    type=click.FloatRange(min=0),
    default=2.5,
    show_default=True,
    help="The purge window in seconds: older stale reads are failures.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="The JSON report (default: RUN_DIR/check/check.json).",
)
@click.pass_context
def check(
    ctx,
    run_dir,
    start,
    port,
    scenario_file,
    seconds,
    faults,
    phase_seconds,
    clients,
    rate,
    seed,
    window,
    out,
):
    """Check that nothing stale is served and nothing written is lost, under fire.

    Clients send mixed traffic through the load balancer (anonymous and logged-in reads,
    writes through the site's own forms and through a management command that knows only
    the database and the cache) while a schedule of faults runs, one per phase after a
    baseline: an app server killed or hung, the cache server restarted empty, the version
    store flushed, the database and the accelerator stopped, purges refused, the
    invalidation bus's purger killed, writers killed right after their commit. Every read
    is checked against the writes acknowledged before it started.

    Exit status: 0 when nothing was stale beyond the purge window, phantom or lost;
    1 when something was; 2 for a mistake in the arguments or no running stack.
    """
    try:
        scenario = load_scenario(scenario_file) if scenario_file else demo_scenario()
    except ScenarioError as error:
        raise _Fatal(str(error)) from None
    try:
        names, settings = parse_faults(faults)
    except click.BadParameter as error:
        error.param_hint = "--faults"
        raise
    plan = CheckPlan(
        scenario=scenario,
        faults=names,
        seconds=seconds,
        phase_seconds=phase_seconds or settings.get("phase_seconds", 20.0),
        clients=clients,
        seed=seed,
        rate=rate,
        window=window,
        hold_share=settings.get("hold_share", 0.5),
    )
    with running_stack(run_dir, start, port, "check", error=_Fatal):
        try:
            target = Target.from_run_dir(run_dir)
        except NoStack as error:  # gone since it was found
            raise _Fatal(str(error)) from None
        code = _check(plan, target, out or target.run_dir / "check" / "check.json")
    ctx.exit(code)


def _check(plan: CheckPlan, target: Target, out: Path) -> int:
    phases = ["baseline", *plan.faults]
    console.print(
        f"strata check: {plan.scenario.name} at {target.host}:{target.port}, "
        f"{plan.clients} clients at up to {plan.rate:g} requests/s; phases: {', '.join(phases)} "
        f"(baseline {plan.seconds:g} s, each fault {plan.phase_seconds:g} s); Ctrl-C stops, "
        "heals and reports"
    )
    # The hit ratios during the whole run (a fault that restarts a program resets its
    # counters: that program's ratio is then not known).
    metrics = Watch(lambda: take_reading(target.reload(), health=False))
    metrics.start()
    with console.status("starting") as spinner:
        try:
            result = run_check(
                plan,
                target,
                say=lambda text: console.print(text),
                status=lambda text: spinner.update(text),
            )
        except CheckError as error:
            hint = (
                ""
                if plan.scenario.source != DEMO_SOURCE
                else (" (is this the demo? for another site give --scenario FILE)")
            )
            raise _Fatal(f"{error}{hint}") from None
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ratios = metrics.stop()
        console.print(summary_table(result))
        for line in verdict_lines(result, ratios):
            console.print(f"  {line}")
        try:
            path = write_report(report_data(result, hit_ratios=ratios), out)
        except OSError as error:
            raise click.ClickException(f"cannot write the report {out}: {error}") from None
        console.print(f"JSON: {path}  (histories: {result.work_dir})")
    finally:
        signal.signal(signal.SIGINT, previous)
    return result.exit_code
