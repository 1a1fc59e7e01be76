"""``strata check``: mixed traffic, a fault schedule and a freshness checker, on the stack
that ``strata up`` runs."""

from __future__ import annotations

import signal
import sys
import tomllib
from pathlib import Path

import click
from rich.console import Console

from ..check.faults import FAULTS
from ..check.launch import start_stack
from ..check.report import report_data, summary_table, verdict_lines, write_report
from ..check.run import CheckError, CheckPlan, run_check
from ..check.scenario import ScenarioError, demo_scenario, load_scenario
from ..check.target import NoStack, Target

__all__ = ["check"]

console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)


class _Fatal(click.ClickException):
    """A mistake or a missing stack: one line, exit status 2."""

    exit_code = 2


def parse_faults(value: str) -> tuple[list[str], dict]:
    """``--faults``: ``all``, ``none``, a comma list, or a TOML file with ``faults = [...]``
    (and optionally ``phase_seconds``, ``hold_share``). Returns the names and the file's
    other settings."""
    settings: dict = {}
    text = value.strip()
    if text.endswith(".toml") or Path(text).is_file():
        try:
            data = tomllib.loads(Path(text).read_text(encoding="utf-8"))
        except OSError as error:
            raise click.BadParameter(f"cannot read {text}: {error.strerror or error}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise click.BadParameter(f"{text}: not valid TOML: {error}") from None
        unknown = sorted(set(data) - {"faults", "phase_seconds", "hold_share"})
        if unknown:
            raise click.BadParameter(
                f"{text}: unknown setting {unknown[0]!r} (known: faults, phase_seconds, hold_share)"
            )
        names = data.get("faults")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise click.BadParameter(f'{text}: faults must be a list of names, e.g. ["app-kill"]')
        for name in ("phase_seconds", "hold_share"):
            if name in data:
                number = data[name]
                low, high = (1, 3600) if name == "phase_seconds" else (0.05, 0.9)
                if (
                    isinstance(number, bool)
                    or not isinstance(number, int | float)
                    or not low <= number <= high
                ):
                    raise click.BadParameter(
                        f"{text}: {name} must be a number from {low} to {high}"
                    )
                settings[name] = float(number)
        where = f"{text}: "
    else:
        if text in ("", "all"):
            return list(FAULTS), settings
        if text == "none":
            return [], settings
        names = [n.strip() for n in text.split(",") if n.strip()]
        where = ""
    for name in names:
        if name not in FAULTS:
            raise click.BadParameter(
                f"{where}unknown fault {name!r} (known: {', '.join(FAULTS)}, or all, none)"
            )
    if len(set(names)) != len(names):
        raise click.BadParameter(f"{where}a fault is named twice")
    return names, settings


@click.command()
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=Path(".strata"),
    show_default=True,
    help="The run directory of the stack that `strata up` runs.",
)
@click.option(
    "--start",
    is_flag=True,
    help="Start `strata up` (the demo) in --run-dir when no stack runs there; stop it after.",
)
@click.option("--port", type=int, default=8000, show_default=True, help="Base port for --start.")
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
    writes through the site's own forms) while a schedule of faults runs, one per phase
    after a baseline: an app server killed or hung, the cache server restarted empty, the
    version store flushed, the database and the accelerator stopped, purges refused.
    Every read is checked against the writes acknowledged before it started.

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
    started = None
    try:
        target = Target.from_run_dir(run_dir)
    except NoStack as error:
        if not start:
            raise _Fatal(
                f"{error}; start one with `strata up --run-dir {run_dir}` "
                "(or run `strata check --start`)"
            ) from None
        try:
            with console.status("starting the stack") as spinner:
                started = start_stack(run_dir, port, progress=lambda m: spinner.update(m))
            target = Target.from_run_dir(run_dir)
        except NoStack as failed:
            raise _Fatal(str(failed)) from None
        console.print(f"started strata up (pid {started.pid}) in {target.run_dir}")
    try:
        code = _check(plan, target, out or target.run_dir / "check" / "check.json")
    finally:
        if started is not None:
            with console.status(f"stopping strata up (pid {started.pid})"):
                warning = started.stop()
            if warning:
                console.print(f"[yellow]warning[/] {warning}")
    ctx.exit(code)


def _check(plan: CheckPlan, target: Target, out: Path) -> int:
    phases = ["baseline", *plan.faults]
    console.print(
        f"strata check: {plan.scenario.name} at {target.host}:{target.port}, "
        f"{plan.clients} clients at up to {plan.rate:g} requests/s; phases: {', '.join(phases)} "
        f"(baseline {plan.seconds:g} s, each fault {plan.phase_seconds:g} s); Ctrl-C stops, "
        "heals and reports"
    )
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
                if plan.scenario.source != "the built-in newsroom scenario"
                else (" (is this the demo? for another site give --scenario FILE)")
            )
            raise _Fatal(f"{error}{hint}") from None
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        console.print(summary_table(result))
        for line in verdict_lines(result):
            console.print(f"  {line}")
        try:
            path = write_report(report_data(result), out)
        except OSError as error:
            raise click.ClickException(f"cannot write the report {out}: {error}") from None
        console.print(f"JSON: {path}  (histories: {result.work_dir})")
    finally:
        signal.signal(signal.SIGINT, previous)
    return result.exit_code
