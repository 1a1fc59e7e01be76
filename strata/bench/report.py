"""What a benchmark found, three ways: Rich tables, a JSON file, and a chart.

The chart (latency per tier on a log scale, the seed's targets as bands) is drawn with
matplotlib's Agg backend into a PNG, and into an HTML page that embeds the same PNG
(base64) beside the tables, so the page opens anywhere with nothing else to fetch.
Without matplotlib (``pip install 'django-strata[chart]'``) the report says so and the
JSON and HTML tables are written anyway.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import platform
from collections.abc import Iterable
from datetime import datetime
from importlib import metadata
from pathlib import Path

import django
from rich.table import Table

from .. import __version__
from ..top.report import hit_ratio_summary, sources_of
from .breakdown import COMPONENTS, Breakdown
from .run import BenchRun, TierRun

__all__ = [
    "COLD_NOTE",
    "breakdown_tables",
    "hit_ratio_notes",
    "machine",
    "notes",
    "package_version",
    "result_rows",
    "summary_table",
    "to_json",
    "write_reports",
]

COLD_NOTE = (
    "cold: Strata's page, fragment and query caches are off for these requests; the "
    "database's own buffers (PostgreSQL's shared buffers, the OS page cache) stay warm, "
    "so a truly cold database would be slower still."
)

NO_MATPLOTLIB = "chart not drawn: matplotlib is not installed (pip install 'django-strata[chart]')"


def machine(packages: Iterable[str] = ()) -> dict:
    """The machine a benchmark ran on: CPU, cores, memory, kernel, load, Python and Django,
    and the version of each distribution in ``packages`` (None when not installed)."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory": _proc_field("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "node": platform.node(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "django": django.get_version(),
        "packages": {name: package_version(name) for name in packages},
    }


def _proc_field(path: str, name: str) -> str | None:
    """The value of the first ``name: value`` line of a /proc file (None off Linux)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def package_version(distribution: str) -> str | None:
    """The installed version of the Python distribution ``distribution``, None if absent."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f} ms"
    if value < 100:
        return f"{value:.1f} ms"
    return f"{value:,.0f} ms"


def result_rows(bench: BenchRun) -> list[dict[str, object]]:
    """One plain row per page and tier: what the table, JSON and HTML all show."""
    rows = []
    for run in bench.runs:
        load = run.load
        row: dict[str, object] = {
            "path": run.path,
            "tier": run.tier.name,
            "title": run.tier.title,
            "target": {
                "label": run.tier.target.label,
                "low_ms": run.tier.target.low_ms,
                "high_ms": run.tier.target.high_ms,
            },
            "status": run.status,
            "reason": run.reason,
            "observed": run.observed,
            "proof": f"{run.tier.proof_header}: {run.tier.proof_value}",
        }
        if load is not None:
            row.update(
                {
                    "engine": load.engine,
                    "seconds": round(load.seconds, 3),
                    "connections": load.connections,
                    "requests": load.requests,
                    "answered": load.answered,
                    "mismatches": {
                        (value if value is not None else f"(no {load.proof_header} header)"): n
                        for value, n in load.mismatches.items()
                    },
                    "errors": load.errors,
                    "rps": round(load.rps, 1),
                    "p50_ms": load.p50_ms,
                    "p90_ms": load.p90_ms,
                    "p99_ms": load.p99_ms,
                    "max_ms": load.max_ms,
                    "latency_of": load.latency_of,
                    "valid": load.valid,
                    "vs_target": (
                        run.tier.target.verdict(load.p50_ms) if load.p50_ms is not None else None
                    ),
                }
            )
        if run.breakdown is not None:
            row["breakdown"] = run.breakdown.as_dict()
        if run.hit_ratios is not None:
            row["hit_ratios"] = run.hit_ratios
        rows.append(row)
    return rows


def _settings_line(bench: BenchRun) -> str:
    plan = bench.plan
    warm = f" after a {plan.warmup:g} s warm-up (discarded)" if plan.warmup > 0 else ""
    return (
        f"load: {bench.engine}, {plan.connections} connections, "
        f"{plan.seconds:g} s per tier{warm}; stack: {plan.endpoints.source}"
    )


def notes(bench: BenchRun) -> list[str]:
    """The sentences under the table: load generator, mismatches, unavailable tiers."""
    out = [_settings_line(bench)]
    if bench.plan.engine.is_fallback:
        out.append(
            f"{bench.engine}: requests come from Python threads, whose own overhead is in "
            "the figures; install wrk for numbers that describe the stack"
        )
    out += bench.plan.endpoints.notes
    if bench.interrupted:
        out.append("interrupted by Ctrl-C: partial results")
    unavailable: dict[tuple[str, str], list[str]] = {}
    for run in bench.runs:
        if run.status == "unavailable":
            unavailable.setdefault((run.tier.name, run.reason), []).append(run.path)
    for (tier, reason), paths in unavailable.items():
        out.append(f"{tier} tier unavailable for {', '.join(paths)}, not measured: {reason}")
    for run in bench.runs:
        where = f"{run.path} {run.tier.name}"
        if run.status == "failed":
            out.append(f"{where}: not measured, the load generator failed: {run.reason}")
        load = run.load
        if load is None:
            continue
        for line in load.mismatch_lines():
            if load.latency_excludes_mismatches:
                out.append(f"{where}: {line}; not counted in the figures")
            else:
                out.append(f"{where}: {line}; counted apart (wrk's latencies include them)")
        if load.mismatched and not load.valid:
            out.append(
                f"{where}: {load.mismatch_share:.0%} of the responses came from another tier: "
                "this tier's figures are not valid"
            )
        if load.errors:
            out.append(f"{where}: {load.errors:,} errors (status 400 and up, or socket errors)")
        if load.answered == 0:
            out.append(f"{where}: no response came from the intended tier")
    if any(run.tier.name == "cold" and run.load is not None for run in bench.runs):
        out.append(COLD_NOTE)
    out += hit_ratio_notes(bench)
    return out


def hit_ratio_notes(bench: BenchRun) -> list[str]:
    """What the caches answered during each measured run, and where that was read."""
    measured = [run for run in bench.runs if run.load is not None]
    if not measured:
        return []
    if bench.plan.read_metrics is None:
        return ["hit ratios during the runs: not read (the stack was given by URL)"]
    out, sources = [], set()
    for run in measured:
        if run.hit_ratios is None:
            out.append(f"{run.path} {run.tier.name}: hit ratios during the run: not read")
            continue
        out.append(
            f"{run.path} {run.tier.name}: during the run: {hit_ratio_summary(run.hit_ratios)}"
        )
        sources.update(sources_of(run.hit_ratios))
    if sources:
        out.append("hit ratios read from " + ", ".join(sorted(sources)))
    return out


def summary_table(bench: BenchRun) -> Table:
    """requests/s and p50/p90/p99 per page and tier, beside the seed's targets."""
    table = Table(title="strata bench: response time per tier", title_justify="left")
    table.add_column("page", max_width=40, overflow="fold")
    table.add_column("tier")
    table.add_column("answered", justify="right")
    table.add_column("req/s", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p90", justify="right")
    table.add_column("p99", justify="right")
    table.add_column("seed's target", justify="right")
    table.add_column("p50 vs target")
    previous = None
    for run in bench.runs:
        page = run.path if run.path != previous else ""
        previous = run.path
        tier = f"{run.tier.name} ({run.tier.title})"
        load = run.load
        if load is None:
            status = {"unavailable": "[yellow]unavailable[/]", "failed": "[red]failed[/]"}.get(
                run.status, run.status
            )
            table.add_row(page, tier, "-", "-", "-", "-", "-", run.tier.target.label, status)
            continue
        answered = f"{load.answered:,} of {load.requests:,}"
        if load.mismatched:
            answered = f"[yellow]{answered}[/]"
        p50 = load.p50_ms
        verdict = run.tier.target.verdict(p50) if p50 is not None else "-"
        if not load.valid:
            verdict = "[red]not valid[/]"
        elif p50 is not None and run.tier.target.ratio(p50) <= 1:
            verdict = f"[green]{verdict}[/]"
        elif p50 is not None and run.tier.target.ratio(p50) >= 5:
            verdict = f"[red]{verdict}[/]"
        if run.status == "partial":
            verdict += " (partial)"
        table.add_row(
            page,
            tier,
            answered,
            f"{load.rps:,.0f}",
            _ms(load.p50_ms),
            _ms(load.p90_ms),
            _ms(load.p99_ms),
            run.tier.target.label,
            verdict,
        )
    return table


def breakdown_tables(bench: BenchRun) -> list[tuple[Table, list[str]]]:
    """Per page: where a warm and a cold request's time goes, the 30% verdict, slow queries."""
    out = []
    for path in bench.plan.paths:
        runs = [(r, r.breakdown) for r in bench.runs if r.path == path and r.breakdown is not None]
        if not runs:
            continue
        table = Table(title=f"where the time goes: {path}", title_justify="left", min_width=60)
        table.add_column("component")
        for run, b in runs:
            table.add_column(f"{run.tier.name} (mean of {b.requests})", justify="right")
        for name, label in COMPONENTS.items():
            cells = []
            for _run, b in runs:
                share = b.shares.get(name, 0.0)
                cell = f"{_ms(b.components_ms.get(name))}  {share:>4.0%}"
                if name != "app" and share > 0.30:
                    cell = f"[red]{cell}[/]"
                cells.append(cell)
            table.add_row(label, *cells)
        table.add_row("total", *[_ms(b.total_ms) for _r, b in runs])
        table.add_row(
            "queries",
            *[f"{b.queries:g}" if b.queries is not None else "-" for _r, b in runs],
        )
        lines = [f"{run.tier.name}: {b.verdict}" for run, b in runs]
        slow = _slowest(runs)
        if slow is not None:
            slow_run, slow_breakdown = slow
            lines.append(f"slowest queries ({slow_run.tier.name}):")
            for query in slow_breakdown.slowest:
                sql = query.sql if len(query.sql) <= 110 else query.sql[:109] + "…"
                lines.append(f"  {_ms(query.max_ms)} (mean {_ms(query.mean_ms)}) {sql}")
        out.append((table, lines))
    return out


def _slowest(runs: list[tuple[TierRun, Breakdown]]) -> tuple[TierRun, Breakdown] | None:
    for name in ("cold", "warm"):
        for run, b in runs:
            if run.tier.name == name and b.slowest:
                return run, b
    return None


def to_json(bench: BenchRun) -> dict:
    """Everything, for a file: settings, machine, stack, rows, notes."""
    plan = bench.plan
    return {
        "tool": "strata bench",
        "strata_version": __version__,
        "started_at": bench.started_at,
        "finished_at": bench.finished_at,
        "interrupted": bench.interrupted,
        "machine": machine(),
        "stack": plan.endpoints.as_dict(),
        "load": {
            "engine": bench.engine,
            "fallback": plan.engine.is_fallback,
            "seconds": plan.seconds,
            "warmup_seconds": plan.warmup,
            "connections": plan.connections,
        },
        "targets_source": "High Performance Django, The Big Picture: estimated response times",
        "results": result_rows(bench),
        "notes": notes(bench),
    }


def _stamp(bench: BenchRun) -> str:
    try:
        started = datetime.fromisoformat(bench.started_at).astimezone()
    except ValueError:
        started = datetime.now()
    return started.strftime("%Y%m%d-%H%M%S")


def write_reports(bench: BenchRun, out_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """Write ``bench-<time>.json``, ``.png`` and ``.html`` in ``out_dir``; say what was skipped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"bench-{_stamp(bench)}"
    written: dict[str, Path] = {}
    skipped: list[str] = []
    data = to_json(bench)
    json_path = base.with_suffix(".json")
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    written["json"] = json_path
    png = chart_png(bench)
    if png is None:
        skipped.append(NO_MATPLOTLIB)
    else:
        png_path = base.with_suffix(".png")
        png_path.write_bytes(png)
        written["png"] = png_path
    html_path = base.with_suffix(".html")
    html_path.write_text(html_page(bench, png, data))
    written["html"] = html_path
    return written, skipped


def chart_png(bench: BenchRun) -> bytes | None:
    """Latency per tier (p50, p90, p99) on a log scale, the seed's targets as bands."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return None
    tiers = bench.plan.tiers
    paths = bench.plan.paths
    colours = plt.get_cmap("tab10")
    figure, axes = plt.subplots(figsize=(9, 5.2), dpi=110)
    values = [t.target.high_ms for t in tiers] + [t.target.low_ms or 0 for t in tiers]
    for run in bench.runs:
        if run.load and run.load.p50_ms is not None:
            values += [run.load.p50_ms, run.load.p99_ms or run.load.p50_ms]
    bottom = max(min(v for v in values if v > 0) / 3, 0.01)
    top = max(values) * 3
    width = 0.8
    for x, tier in enumerate(tiers):
        low = tier.target.low_ms or bottom
        axes.fill_between(
            [x - width / 2, x + width / 2], low, tier.target.high_ms, color="#2ca02c", alpha=0.12
        )
        axes.hlines(tier.target.high_ms, x - width / 2, x + width / 2, colors="#2ca02c", lw=1)
    step = width / (len(paths) + 1)
    for i, path in enumerate(paths):
        colour = colours(i % 10)
        for x, tier in enumerate(tiers):
            found = next((r for r in bench.runs if r.path == path and r.tier is tier), None)
            if found is None or found.load is None:
                continue
            load = found.load
            # The percentiles are all None (nothing answered) or all measured.
            p50, p90, p99 = load.p50_ms, load.p90_ms, load.p99_ms
            if p50 is None or p90 is None or p99 is None:
                continue
            at = x - width / 2 + step * (i + 1)
            faded = 0.35 if (not load.valid or found.status == "partial") else 1.0
            axes.vlines(at, p50, p99, colors=[colour], alpha=faded, lw=2)
            axes.plot([at], [p50], "o", color=colour, alpha=faded)
            axes.plot([at], [p90], "^", color=colour, alpha=faded)
            axes.plot([at], [p99], "x", color=colour, alpha=faded)
        axes.plot([], [], "o-", color=colour, label=path)
    for x, tier in enumerate(tiers):
        if not any(r.tier is tier and r.load and r.load.p50_ms is not None for r in bench.runs):
            axes.text(x, bottom * 3, "not measured", ha="center", color="grey", fontsize=8)
    axes.plot([], [], "o", color="grey", label="p50")
    axes.plot([], [], "^", color="grey", label="p90")
    axes.plot([], [], "x", color="grey", label="p99")
    axes.fill_between([], [], color="#2ca02c", alpha=0.2, label="seed's target")
    axes.set_yscale("log")
    axes.set_ylim(bottom, top)
    axes.set_xlim(-0.6, len(tiers) - 0.4)
    axes.set_xticks(range(len(tiers)))
    axes.set_xticklabels([f"{t.title}\n(target {t.target.label})" for t in tiers], fontsize=8)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
    axes.set_ylabel("latency (log scale)")
    title = f"strata bench: latency per tier — {bench.engine}"
    if bench.interrupted:
        title += " (partial)"
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _tick(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:g} s"
    return f"{ms:g} ms"


def html_page(bench: BenchRun, png: bytes | None, data: dict | None = None) -> str:
    """A page with the chart (embedded, base64) and the tables: nothing to fetch."""
    data = data or to_json(bench)
    e = html.escape
    head = ["page", "tier", "answered", "req/s", "p50", "p90", "p99", "seed's target", "status"]
    body = []
    for row in data["results"]:
        if "requests" in row:
            cells = [
                row["path"],
                f"{row['tier']} ({row['title']})",
                f"{row['answered']:,} of {row['requests']:,}",
                f"{row['rps']:,.0f}",
                _ms(row["p50_ms"]),
                _ms(row["p90_ms"]),
                _ms(row["p99_ms"]),
                row["target"]["label"],
                row["vs_target"] if row["valid"] else "not valid",
            ]
        else:
            cells = [row["path"], f"{row['tier']} ({row['title']})", "-", "-", "-", "-", "-"]
            cells += [row["target"]["label"], row["status"]]
        body.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
    breakdown = []
    for row in data["results"]:
        if "breakdown" not in row:
            continue
        b = row["breakdown"]
        parts = ", ".join(
            f"{COMPONENTS[k]} {b['components_ms'][k]:.1f} ms ({b['shares'][k]:.0%})"
            for k in COMPONENTS
        )
        breakdown.append(
            f"<li><b>{e(row['path'])} {e(row['tier'])}</b>: {e(parts)}; {e(b['verdict'])}</li>"
        )
        for query in b["slowest_queries"]:
            breakdown.append(f"<li class=q>{e(_ms(query['max_ms']))} {e(query['sql'])}</li>")
    chart = (
        f'<img alt="latency per tier" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else f"<p>{e(NO_MATPLOTLIB)}</p>"
    )
    note_items = "".join(f"<li>{e(n)}</li>" for n in data["notes"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strata bench {e(bench.started_at)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: right; }}
td:nth-child(-n+2), th:nth-child(-n+2) {{ text-align: left; }} img {{ max-width: 100%; }}
li.q {{ font-family: monospace; list-style: none; }}
</style></head><body>
<h1>strata bench</h1>
<p>{e(bench.started_at)} — {e(data["load"]["engine"])}, {data["load"]["connections"]} connections,
{data["load"]["seconds"]:g} s per tier; {e(data["machine"]["platform"])}, {data["machine"]["cpus"]} CPUs</p>
{chart}
<table><tr>{"".join(f"<th>{e(h)}</th>" for h in head)}</tr>
{"".join(body)}
</table>
<h2>Where the time goes</h2><ul>{"".join(breakdown) or "<li>no breakdown (the warm and cold tiers were not measured)</li>"}</ul>
<h2>Notes</h2><ul>{note_items}</ul>
</body></html>
"""
