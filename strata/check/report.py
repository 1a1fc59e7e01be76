"""What ``strata check`` shows and writes: a Rich table of phases, and a JSON report."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from rich.console import JustifyMethod
from rich.markup import escape
from rich.table import Table

from ..bench.report import machine
from ..top.report import hit_ratio_lines
from .freshness import BUCKETS, PhaseFigures
from .history import Phase
from .run import CheckResult

__all__ = ["summary_table", "verdict_lines", "report_data", "write_report"]


def _count(value: int, bad: bool = True) -> str:
    if value and bad:
        return f"[bold red]{value:,}[/]"
    return f"{value:,}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _recovery(phase: Phase | None, interrupted: bool) -> str:
    if phase is None or phase.fault is None:
        return "-"
    if phase.applied is None:
        return "[yellow]not applied[/]"
    seconds = phase.recovery_seconds
    if seconds is None:
        return "[yellow]interrupted[/]" if interrupted else "[bold red]not recovered[/]"
    return f"{seconds:.1f} s"


def summary_table(result: CheckResult) -> Table:
    """Phase × reads, writes, errors, stale by age, lost, purge window, time to recover."""
    table = Table(
        title=f"strata check: {result.plan.scenario.name}, run {result.run_id}",
        title_justify="left",
    )
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("phase", "left"),
        ("reads", "right"),
        ("writes acked", "right"),
        ("5xx / errors", "right"),
        ("stale <50ms", "right"),
        ("50ms–1s", "right"),
        ("≥1s", "right"),
        ("purge path down", "right"),
        ("beyond window", "right"),
        ("phantom", "right"),
        ("lost", "right"),
        ("purge window p50/p99/max ms", "right"),
        ("recovered in", "right"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    phases = {p.name: p for p in result.phases}
    for figure in result.verdict.phases:
        window = figure.window_summary()
        fives = figure.reads_5xx + figure.writes_5xx
        errors = figure.reads_errors + figure.writes_errors
        table.add_row(
            figure.name,
            f"{figure.reads:,}",
            f"{figure.writes_acked:,}"
            + (f" (+{figure.writes_unknown} ?)" if figure.writes_unknown else ""),
            f"{fives:,} / {errors:,}",
            _count(figure.stale["0ms"], bad=False),
            _count(figure.stale["50ms"], bad=False),
            _count(figure.stale["1s"], bad=False),
            f"{figure.stale_purge_down:,}",
            _count(figure.beyond_window),
            _count(figure.phantoms),
            _count(figure.lost),
            f"{_ms(window['p50_ms'])} / {_ms(window['p99_ms'])} / {_ms(window['max_ms'])}",
            _recovery(phases.get(figure.name), result.interrupted),
        )
    return table


def _totals(figures: list[PhaseFigures]) -> dict:
    total = {
        "reads": sum(f.reads for f in figures),
        "reads_checked": sum(f.reads_checked for f in figures),
        "writes_sent": sum(f.writes_sent for f in figures),
        "writes_acked": sum(f.writes_acked for f in figures),
        "writes_unknown": sum(f.writes_unknown for f in figures),
        "writes_rejected": sum(f.writes_rejected for f in figures),
        "writes_not_sent": sum(f.writes_not_sent for f in figures),
        "writes_command": sum(f.writes_command for f in figures),
        "writes_killed": sum(f.writes_killed for f in figures),
        "http_5xx": sum(f.reads_5xx + f.writes_5xx for f in figures),
        "connection_errors": sum(f.reads_errors + f.writes_errors for f in figures),
        "stale": {b: sum(f.stale[b] for f in figures) for b in BUCKETS},
        "stale_purge_down": sum(f.stale_purge_down for f in figures),
        "beyond_window": sum(f.beyond_window for f in figures),
        "phantoms": sum(f.phantoms for f in figures),
        "lost": sum(f.lost for f in figures),
        "unknown_committed": sum(f.unknown_committed for f in figures),
        "unknown_not_committed": sum(f.unknown_not_committed for f in figures),
    }
    return total


def verdict_lines(result: CheckResult, hit_ratios: dict | None = None) -> list[str]:
    """One line per finding (or one saying there was none), Rich markup; then the hit
    ratios during the run (:func:`strata.top.report.hit_ratios`), when read."""
    verdict = result.verdict
    lines = []
    totals = _totals(verdict.phases)
    if verdict.beyond_window:
        lines.append(
            f"[bold red]{verdict.beyond_window} stale read(s) beyond the {verdict.window:g} s purge window[/]"
        )
    if verdict.phantoms:
        lines.append(
            f"[bold red]{len(verdict.phantoms)} phantom value(s): never written, yet shown[/]"
        )
    if verdict.lost:
        lines.append(f"[bold red]{len(verdict.lost)} acknowledged write(s) lost[/]")
    if verdict.unverified:
        lines.append(
            f"[bold red]{len(verdict.unverified)} key(s) could not be verified after the run[/] "
            f"({', '.join(verdict.unverified[:5])})"
        )
    if result.stuck:
        lines.append(f"[bold red]the stack did not recover from {result.stuck}[/]")
    if not lines:
        lines.append(
            f"[bold green]nothing stale beyond the {verdict.window:g} s purge window, "
            "nothing phantom, nothing lost[/]"
        )
    lines.append(
        f"{totals['reads_checked']:,} of {totals['reads']:,} reads checked against "
        f"{totals['writes_acked']:,} acknowledged writes ({totals['writes_unknown']} of unknown "
        f"outcome: {totals['unknown_committed']} committed, {totals['unknown_not_committed']} "
        f"not; {totals['writes_rejected']} rejected, {totals['writes_not_sent']} not sent)"
    )
    if totals["writes_command"]:
        lines.append(
            f"{totals['writes_command']:,} write(s) by a management command in a process of "
            f"its own, {totals['writes_killed']} of them SIGKILLed right after their commit"
        )
    figures = {f.name: f for f in verdict.phases}
    for phase in result.phases:
        figure = figures.get(phase.name)
        if figure is not None and figure.statuses:
            answers = ", ".join(f"{n} × {status}" for status, n in sorted(figure.statuses.items()))
            lines.append(
                f"{phase.name}: answers {answers}; {figure.reads_anonymous_5xx} of "
                f"{figure.reads_anonymous} anonymous reads, {figure.reads_5xx - figure.reads_anonymous_5xx} "
                f"of {figure.reads_logged_in} logged-in reads and {figure.writes_5xx} of "
                f"{figure.writes_sent} writes got a 5xx"
            )
            lines.extend(f"  a write {said}" for said in figure.failed_writes)
        if phase.taken_out is not None and phase.applied is not None:
            victim = phase.details.get("server") or phase.details.get("program")
            if phase.details.get("fenced"):  # purger-kill: the accelerators it no longer fed
                victim = f"{', '.join(phase.details['fenced'])} (fenced: undelivered purges)"
            lines.append(
                f"{phase.name}: the load balancer took {victim} "
                f"out {phase.taken_out - phase.applied:.1f} s after the fault"
            )
        for note in phase.notes:
            lines.append(f"{phase.name}: {note}")
    for name, reason in result.skipped:
        lines.append(f"[yellow]{name} skipped[/]: {reason}")
    for note in result.notes:
        lines.append(f"[yellow]note[/] {note}")
    lines += [escape(line) for line in hit_ratio_lines(hit_ratios)]
    return lines


def _phase_row(phase: Phase, figure: PhaseFigures | None, t0: float, cpu) -> dict:
    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - t0, 3)

    row = {
        "name": phase.name,
        "fault": phase.fault,
        "start": rel(phase.start),
        "seconds": round(phase.end - phase.start, 3) if phase.end else None,
        "applied": rel(phase.applied),
        "healed": rel(phase.healed),
        "recovered": rel(phase.recovered),
        "recovery_seconds": None
        if phase.recovery_seconds is None
        else round(phase.recovery_seconds, 3),
        "taken_out_seconds": (
            None
            if phase.taken_out is None or phase.applied is None
            else round(phase.taken_out - phase.applied, 3)
        ),
        "details": phase.details,
        "notes": phase.notes,
        "machine_cpu_busy": cpu.get(phase.name),
    }
    if figure is not None:
        row.update(figure.as_dict())
        row["name"] = phase.name
        if row["seconds"]:
            requests = figure.reads + figure.writes_sent
            row["requests_per_second"] = round(requests / row["seconds"], 1)
    return row


def report_data(
    result: CheckResult, argv: list[str] | None = None, hit_ratios: dict | None = None
) -> dict:
    """The JSON report: plan, stack, per-phase figures, every finding, and the hit
    ratios during the run with the URLs they were read from (None: not read)."""
    verdict = result.verdict
    t0 = result.phases[0].start if result.phases else 0.0
    figures = {f.name: f for f in verdict.phases}
    plan = result.plan
    client_cpu = sum(c.get("cpu_seconds", 0.0) for c in result.history.clients)
    seconds = sum((p.end - p.start) for p in result.phases if p.name != "final" and p.end)
    return {
        "tool": "strata check",
        "run_id": result.run_id,
        "started_at": result.started_at,
        "command": argv if argv is not None else sys.argv,
        "clock": "CLOCK_MONOTONIC (one clock for every process of the machine); times are seconds from the baseline's start",
        "machine": {
            **machine(),
            "client_cpu_seconds": round(client_cpu, 2),
            "client_cpu_share_of_machine": (
                round(client_cpu / (seconds * (os.cpu_count() or 1)), 3) if seconds else None
            ),
        },
        "plan": {
            "scenario": plan.scenario.name,
            "scenario_source": plan.scenario.source,
            "faults": plan.faults,
            "baseline_seconds": plan.seconds,
            "phase_seconds": plan.phase_seconds,
            "hold_seconds": plan.hold_seconds(),
            "clients": plan.clients,
            "seed": plan.seed,
            "rate": plan.rate,
            "window": plan.window,
            "recovery_timeout": plan.recovery_timeout,
            "purge_retry": plan.purge_retry,
        },
        "stack": result.target,
        "objects": result.objects,
        "phases": [_phase_row(p, figures.get(p.name), t0, result.cpu) for p in result.phases],
        "skipped": [{"fault": name, "reason": reason} for name, reason in result.skipped],
        "totals": _totals(verdict.phases),
        "verdict": {
            "ok": not (verdict.failed or result.stuck),
            "exit_code": result.exit_code,
            "beyond_window": verdict.beyond_window,
            "phantoms": len(verdict.phantoms),
            "lost": len(verdict.lost),
            "unverified": verdict.unverified,
            "stuck": result.stuck,
            "interrupted": result.interrupted,
        },
        "stale_reads": [_relative(s.as_dict(), t0) for s in verdict.stale_reads],
        "phantoms": [_relative(p.as_dict(), t0) for p in verdict.phantoms],
        "lost_writes": [_relative(lost.as_dict(), t0, "acked") for lost in verdict.lost],
        "clients": result.history.clients,
        "notes": result.notes,
        "hit_ratios": hit_ratios,
    }


def _relative(row: dict, t0: float, name: str = "start") -> dict:
    if row.get(name) is not None:
        row[name] = round(row[name] - t0, 3)
    return row


def write_report(data: dict, path: Path) -> Path:
    """Write the JSON report (directories made as needed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
