"""Two readings of a running stack, and the figures of each tier between them.

:func:`take_reading` reads every source of the stack in ``state.json`` at once (a
thread per source, each bounded by a timeout): HAProxy's ``show stat``, each Varnish's
counters, each app server's ``/-/metrics``, one ``/-/timing/``, each program's health.
A source that does not answer is recorded as down, with why; nothing raises.

:func:`compare` turns two readings into :class:`Figures`: per tier and program, the
requests per second, the hit ratio, p50/p99 (from histogram buckets, so bounded by
them) and a short note, each with the source it came from. The app servers' figures
come from ``/-/metrics`` (the ``strata_*`` contract names); where no app server serves
it, from ``/-/timing/`` (which each process writes every few seconds, so its rates step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..stack.runstate import RunState
from .samples import Samples, bucket_delta, delta, quantile, ratio
from .sources import (
    SourceDown,
    probe_program,
    read_haproxy,
    read_metrics,
    read_timing,
    read_varnish,
)

__all__ = ["Answer", "Reading", "Row", "Health", "Figures", "take_reading", "compare"]

T = TypeVar("T")

PAGE_HITS = ("page-hit", "page-stale")
"""The ``outcome`` values of ``strata_requests_total`` that the page cache answered."""

OWN_VIEWS = ("strata.metrics.views.metrics", "strata.timing.views.status")
"""The views that ``strata top`` itself asks (``/-/metrics``, ``/-/timing/``)."""
OTHERS = {"view": OWN_VIEWS}
"""Leave them out of the app tier's figures: a monitor must not count itself."""


@dataclass
class Answer(Generic[T]):
    """What one source gave: its value, or why it gave none; ``source`` says where from."""

    source: str
    value: T | None = None
    error: str | None = None

    @property
    def up(self) -> bool:
        """True when the source answered with figures."""
        return self.error is None


@dataclass
class Health:
    """One program of the stack: its pid alive and its probe answering."""

    name: str
    layer: str
    implementation: str
    ok: bool
    detail: str


@dataclass
class Reading:
    """Every source of one stack, read at one moment (``at``: ``time.monotonic()``)."""

    at: float
    haproxy: dict[str, Answer[dict]] = field(default_factory=dict)
    varnish: dict[str, Answer[dict[str, int]]] = field(default_factory=dict)
    metrics: dict[str, Answer[Samples]] = field(default_factory=dict)
    timing: Answer[dict] | None = None
    health: list[Health] = field(default_factory=list)


@dataclass
class Row:
    """One line of a tier: a program (or ``all``) and its figures over the interval."""

    tier: str
    name: str
    up: bool
    rps: float | None = None
    hit_ratio: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""
    source: str = ""
    counts: dict[str, float] = field(default_factory=dict)


@dataclass
class Figures:
    """What happened between two readings, tier by tier."""

    seconds: float
    rows: list[Row]
    health: list[Health]

    def tier(self, name: str) -> list[Row]:
        """The rows of tier ``name``, in order."""
        return [row for row in self.rows if row.tier == name]


def _answer(source: str, read: Callable[[], T]) -> Answer[T]:
    try:
        return Answer(source, read())
    except SourceDown as error:
        return Answer(source, error=str(error))
    except Exception as error:  # a reader's bug must not end a live view
        return Answer(source, error=f"{type(error).__name__}: {error}")


def take_reading(
    state: RunState, timeout: float = 1.0, health: bool = True, timing: bool = True
) -> Reading:
    """Read every source of the stack that ``state`` describes, concurrently."""
    programs = state.programs
    jobs: dict[tuple[str, str], Callable[[], Any]] = {}
    for name in state.named("load balancer"):
        sock = state.run_dir / name / "admin.sock"
        jobs[("haproxy", name)] = _bind(_answer, f"{sock} show stat", _bind(read_haproxy, sock))
    for name in state.named("accelerator"):
        work_dir = programs[name].get("work_dir") or str(state.run_dir / name)
        jobs[("varnish", name)] = _bind(
            _answer, f"varnishstat -n {work_dir}", _bind(read_varnish, work_dir)
        )
    apps = [
        (name, *address)
        for name, address in zip(
            state.named("app server"), state.addresses("app server"), strict=True
        )
    ]
    for name, host, port in apps:
        url = f"http://{host}:{port}/-/metrics"
        jobs[("metrics", name)] = _bind(_answer, url, _bind(read_metrics, host, port, timeout))
    if timing and apps:
        jobs[("timing", "")] = _bind(_first_timing, apps, timeout)
    if health:
        for name, program in programs.items():
            jobs[("health", name)] = _bind(_health, name, program, timeout)
    reading = Reading(at=time.monotonic())
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(jobs)))) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
    for (kind, name), future in futures.items():
        value = future.result()
        if kind == "haproxy":
            reading.haproxy[name] = value
        elif kind == "varnish":
            reading.varnish[name] = value
        elif kind == "metrics":
            reading.metrics[name] = value
        elif kind == "timing":
            reading.timing = value
        else:
            reading.health.append(value)
    reading.at = (reading.at + time.monotonic()) / 2  # the middle of the reads
    return reading


def _bind(function: Callable[..., T], *args: Any) -> Callable[[], T]:
    return lambda: function(*args)


def _first_timing(apps: list[tuple[str, str, int]], timeout: float) -> Answer[dict]:
    """``/-/timing/`` from the first app server that answers (any one shows them all)."""
    answer: Answer[dict] = Answer("/-/timing/", error="no app server")
    for _name, host, port in apps:
        answer = _answer(f"http://{host}:{port}/-/timing/", _bind(read_timing, host, port, timeout))
        if answer.up:
            break
    return answer


def _health(name: str, program: dict, timeout: float) -> Health:
    try:
        ok, detail = probe_program(program, timeout)
    except Exception as error:  # a probe's bug must not end a live view
        ok, detail = False, f"{type(error).__name__}: {error}"
    return Health(
        name,
        str(program.get("layer", "")),
        str(program.get("implementation", "")),
        ok,
        detail,
    )


# -- figures between two readings ----------------------------------------------------------
def compare(before: Reading, after: Reading) -> Figures:
    """The figures of every tier between ``before`` and ``after``."""
    seconds = max(after.at - before.at, 1e-6)
    rows: list[Row] = []
    for name, answer in after.haproxy.items():
        rows.append(_haproxy_row(name, before.haproxy.get(name), answer, seconds))
    for name, answer in after.varnish.items():
        row = _varnish_row(name, before.varnish.get(name), answer, seconds)
        sent = _sent_by_haproxy(before, after, name)
        if row.up and sent is not None:
            # Varnish adds a busy connection's counters up only when its worker thread
            # goes idle: under steady load they come in bursts. HAProxy counts at once.
            row.rps = sent / seconds
            row.note += ", req/s as HAProxy sent them"
        rows.append(row)
    rows += _app_rows(before, after, seconds)
    rows += _cache_rows(before, after, seconds)
    return Figures(seconds=seconds, rows=rows, health=after.health)


def _rate(change: float | None, seconds: float) -> float | None:
    return None if change is None else change / seconds


def _sent_by_haproxy(before: Reading, after: Reading, server: str) -> float | None:
    """Requests HAProxy sent to ``server`` of its accelerators between the readings."""
    for name, answer in after.haproxy.items():
        old = before.haproxy.get(name)
        if not answer.up or answer.value is None or old is None or old.value is None:
            continue
        try:
            now = float(answer.value[("accelerators", server)]["req_tot"])
            then = float(old.value[("accelerators", server)]["req_tot"])
        except (KeyError, ValueError):
            continue
        return delta(then, now)
    return None


def _haproxy_row(name: str, old: Answer | None, new: Answer, seconds: float) -> Row:
    if not new.up or new.value is None:
        return Row("load balancer", name, False, note=new.error or "", source=new.source)
    stats = new.value
    before = old.value if old is not None and old.value is not None else {}

    def counter(proxy: str, server: str, column: str, table: dict) -> float | None:
        try:
            return float(table[(proxy, server)][column])
        except (KeyError, ValueError):
            return None

    requests = delta(
        counter("public", "FRONTEND", "req_tot", before),
        counter("public", "FRONTEND", "req_tot", stats),
    )
    errors = delta(
        counter("public", "FRONTEND", "hrsp_5xx", before),
        counter("public", "FRONTEND", "hrsp_5xx", stats),
    )
    parts = []
    for backend, label in (("accelerators", "accelerators"), ("app_pool", "app pool")):
        servers = [
            row["status"]
            for (proxy, server), row in stats.items()
            if proxy == backend
            and server not in ("FRONTEND", "BACKEND")
            and row.get("status") != "no check"
        ]
        if servers:
            up = sum(1 for status in servers if status.startswith("UP"))
            parts.append(f"{label} {up}/{len(servers)} up")
    if errors:
        parts.append(f"{errors / seconds:.1f} 5xx/s")
    average = counter("accelerators", "BACKEND", "ttime", stats)
    if average:
        parts.append(f"avg {average:.0f} ms")
    return Row(
        "load balancer",
        name,
        True,
        rps=_rate(requests, seconds),
        note=", ".join(parts),
        source=new.source,
        counts={"requests": requests or 0.0, "5xx": errors or 0.0},
    )


def _varnish_row(name: str, old: Answer | None, new: Answer, seconds: float) -> Row:
    if not new.up or new.value is None:
        return Row("accelerator", name, False, note=new.error or "", source=new.source)
    now = new.value
    then = old.value if old is not None and old.value is not None else {}
    requests = delta(then.get("client_req"), now.get("client_req"))
    hits = delta(then.get("cache_hit"), now.get("cache_hit"))
    misses = delta(then.get("cache_miss"), now.get("cache_miss"))
    passes = delta(then.get("s_pass"), now.get("s_pass"))
    lookups = None if hits is None or misses is None else hits + misses
    note = f"{now.get('n_object', 0):,} objects"
    if passes:
        note += f", {passes / seconds:.1f} passes/s"
    return Row(
        "accelerator",
        name,
        True,
        rps=_rate(requests, seconds),
        hit_ratio=ratio(hits, lookups),
        note=note,
        source=new.source,
        counts={"requests": requests or 0.0, "hits": hits or 0.0, "lookups": lookups or 0.0},
    )


def _app_figures(old: Samples | None, new: Samples, seconds: float) -> dict[str, Any]:
    """Requests, page-cache hits and lookups, and p50/p99 (ms) between two samples."""

    def change(name: str, **labels: Any) -> float | None:
        if old is None:
            return None
        return delta(
            old.total(name, OTHERS, **labels) or 0.0, new.total(name, OTHERS, **labels) or 0.0
        )

    requests = change("strata_requests_total")
    hits = change("strata_requests_total", outcome=PAGE_HITS)
    misses = change("strata_requests_total", outcome="page-miss")
    lookups = None if hits is None or misses is None else hits + misses
    buckets = None
    if old is not None:
        buckets = bucket_delta(
            old.buckets("strata_request_duration_seconds", OTHERS),
            new.buckets("strata_request_duration_seconds", OTHERS),
        )
    return {
        "requests": requests,
        "hits": hits,
        "lookups": lookups,
        "buckets": buckets,
        "bypass": change("strata_requests_total", outcome="bypass"),
    }


def _ms(q: float, buckets: list[tuple[float, float]] | None, scale: float = 1000.0) -> float | None:
    value = quantile(q, buckets) if buckets else None
    return None if value is None else value * scale


def _app_rows(before: Reading, after: Reading, seconds: float) -> list[Row]:
    rows: list[Row] = []
    served: list[dict[str, Any]] = []
    sources: list[str] = []
    for name, answer in after.metrics.items():
        if not answer.up or answer.value is None:
            # An answer without figures (a 404 before /-/metrics exists) is not a server down.
            answered = " answered " in (answer.error or "")
            rows.append(
                Row("app server", name, answered, note=answer.error or "", source=answer.source)
            )
            continue
        old = before.metrics.get(name)
        figures = _app_figures(old.value if old is not None else None, answer.value, seconds)
        served.append(figures)
        sources.append(answer.source)
        note = ""
        if figures["bypass"]:
            note = f"{figures['bypass'] / seconds:.1f} bypass/s"
        if figures["requests"] is None and answer.value.total("strata_requests_total") is None:
            note = "no strata_requests_total yet"
        rows.append(_app_row(name, figures, seconds, note, answer.source))
    if len(served) > 1:
        total: dict[str, Any] = {
            key: None if any(f[key] is None for f in served) else sum(f[key] for f in served)
            for key in ("requests", "hits", "lookups")
        }
        total["buckets"] = _sum_buckets([f["buckets"] for f in served])
        rows.append(_app_row("all", total, seconds, "", ", ".join(sources)))
    if not served and after.timing is not None:
        rows.append(_timing_row(before.timing, after.timing, seconds))
    return rows


def _app_row(name: str, figures: dict, seconds: float, note: str, source: str) -> Row:
    return Row(
        "app server",
        name,
        True,
        rps=_rate(figures["requests"], seconds),
        hit_ratio=ratio(figures["hits"], figures["lookups"]),
        p50_ms=_ms(0.5, figures["buckets"]),
        p99_ms=_ms(0.99, figures["buckets"]),
        note=note,
        source=source,
        counts={
            "requests": figures["requests"] or 0.0,
            "hits": figures["hits"] or 0.0,
            "lookups": figures["lookups"] or 0.0,
        },
    )


def _sum_buckets(
    all_buckets: list[list[tuple[float, float]] | None],
) -> list[tuple[float, float]] | None:
    summed: dict[float, float] = {}
    for buckets in all_buckets:
        if buckets is None:
            return None
        for bound, count in buckets:
            summed[bound] = summed.get(bound, 0.0) + count
    return sorted(summed.items())


def timing_totals(data: dict) -> dict[str, Any]:
    """From a ``/-/timing/`` answer: requests, page-cache hits, and the cumulative latency
    buckets in seconds ``(le, count)``, over every view and kind."""
    bounds = [b / 1000 for b in data.get("buckets_ms") or []] + [float("inf")]
    requests = hits = 0.0
    counts = [0.0] * len(bounds)
    for kinds in (data.get("raw") or {}).values():
        for kind, entry in kinds.items():
            count = float(entry.get("count") or 0)
            requests += count
            if kind == "page-hit":
                hits += count
            for i, n in enumerate((entry.get("histogram") or [])[: len(bounds)]):
                counts[i] += float(n)
    cumulative, running = [], 0.0
    for bound, n in zip(bounds, counts, strict=True):
        running += n
        cumulative.append((bound, running))
    return {"requests": requests, "hits": hits, "buckets": cumulative}


def _timing_row(old: Answer[dict] | None, new: Answer[dict], seconds: float) -> Row:
    if not new.up or new.value is None:
        return Row("app server", "all", False, note=new.error or "", source=new.source)
    now = timing_totals(new.value)
    then = timing_totals(old.value) if old is not None and old.value is not None else None
    requests = delta(then["requests"], now["requests"]) if then else None
    hits = delta(then["hits"], now["hits"]) if then else None
    buckets = bucket_delta(then["buckets"], now["buckets"]) if then else None
    return Row(
        "app server",
        "all",
        True,
        rps=_rate(requests, seconds),
        hit_ratio=ratio(hits, requests),
        p50_ms=_ms(0.5, buckets),
        p99_ms=_ms(0.99, buckets),
        note="from /-/timing/ (no /-/metrics): processes write it every few seconds",
        source=new.source,
        counts={"requests": requests or 0.0, "hits": hits or 0.0, "lookups": requests or 0.0},
    )


def _metric_pairs(before: Reading, after: Reading) -> list[tuple[Samples | None, Samples, str]]:
    pairs = []
    for name, answer in after.metrics.items():
        if answer.up and answer.value is not None:
            old = before.metrics.get(name)
            pairs.append((old.value if old is not None else None, answer.value, answer.source))
    return pairs


def _summed_change(pairs, name: str, **labels: Any) -> float | None:
    """The change of counter ``name`` summed over the app servers that report it."""
    total, seen = 0.0, False
    for old, new, _source in pairs:
        after = new.total(name, **labels)
        if after is None or old is None:
            continue
        before = old.total(name, **labels)
        change = delta(0.0 if before is None else before, after)
        if change is not None:
            total += change
            seen = True
    return total if seen else None


def _cache_rows(before: Reading, after: Reading, seconds: float) -> list[Row]:
    """The query cache, the purges (their window) and the invalidation bus."""
    rows = []
    pairs = _metric_pairs(before, after)
    sources = ", ".join(source for *_, source in pairs)
    timing = after.timing.value if after.timing is not None and after.timing.up else None
    timing_before = before.timing.value if before.timing is not None else None
    # Query cache.
    hits = _summed_change(pairs, "strata_query_cache_total", result="hit")
    misses = _summed_change(pairs, "strata_query_cache_total", result="miss")
    if hits is not None or misses is not None:
        lookups = (hits or 0.0) + (misses or 0.0)
        rows.append(
            Row(
                "query cache",
                "all",
                True,
                rps=lookups / seconds,
                hit_ratio=ratio(hits or 0.0, lookups),
                note="req/s: its lookups",
                source=sources,
                counts={"hits": hits or 0.0, "lookups": lookups},
            )
        )
    # Purges: how many, and how long each took (the purge window's part at the edge).
    sent = _summed_change(pairs, "strata_purges_total", result="sent")
    if sent is not None:
        failed = _summed_change(pairs, "strata_purges_total", result="failed") or 0.0
        buckets = _sum_buckets(
            [
                bucket_delta(
                    old.buckets("strata_purge_duration_seconds"),
                    new.buckets("strata_purge_duration_seconds"),
                )
                if old is not None
                else None
                for old, new, _ in pairs
            ]
        )
        rows.append(
            Row(
                "purges",
                "all",
                True,
                rps=sent / seconds,
                p50_ms=_ms(0.5, buckets),
                p99_ms=_ms(0.99, buckets),
                note=f"{failed:.0f} failed" if failed else "",
                source=sources,
                counts={"sent": sent, "failed": failed},
            )
        )
    elif timing is not None:
        now = timing.get("purges") or {}
        then = (timing_before or {}).get("purges") or {}
        requests = delta(then.get("requests"), now.get("requests"))
        failures = delta(then.get("failures"), now.get("failures"))
        rows.append(
            Row(
                "purges",
                "all",
                True,
                rps=_rate(requests, seconds),
                note=(f"{failures:.0f} failed, " if failures else "")
                + f"{now.get('waiting_retry', 0)} waiting to retry",
                source=after.timing.source if after.timing else "",
                counts={"sent": requests or 0.0, "failed": failures or 0.0},
            )
        )
    # The invalidation bus: how far behind each accelerator's purger is.
    lag = None
    for _old, new, _source in pairs:
        value = new.maximum("strata_bus_lag_seconds")
        if value is not None:
            lag = value if lag is None else max(lag, value)
    if lag is not None:
        entries = max(
            (new.maximum("strata_bus_lag_entries") or 0.0 for _o, new, _s in pairs), default=0.0
        )
        fenced = sum(1 for _o, new, _s in pairs if (new.maximum("strata_fence_owed") or 0.0) > 0)
        note = f"lag {lag:.2f} s, {entries:.0f} entries behind"
        rows.append(
            Row(
                "bus",
                "all",
                True,
                note=note + (", fence holds a node" if fenced else ""),
                source=sources,
                counts={"lag_seconds": lag, "behind": entries},
            )
        )
    elif timing is not None and "bus" in timing:
        rows.append(_bus_row(timing["bus"], after.timing.source if after.timing else ""))
    return rows


def _bus_row(bus: dict, source: str) -> Row:
    if "error" in bus:
        return Row("bus", "all", False, note=str(bus["error"]), source=source)
    nodes = bus.get("nodes") or {}
    behind = max((int(seen.get("behind") or 0) for seen in nodes.values()), default=0)
    lags = [float(seen["lag"]) for seen in nodes.values() if seen.get("lag") is not None]
    lease = bus.get("lease")
    note = f"{bus.get('length', 0)} entries, {behind} behind"
    if lags:
        note += f", lag {max(lags):.2f} s"
    note += ", purger " + (str(lease["holder"]) if lease else "none")
    return Row(
        "bus",
        "all",
        bool(lease),
        note=note,
        source=source,
        counts={"behind": float(behind), "lag_seconds": max(lags) if lags else 0.0},
    )
