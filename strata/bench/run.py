"""One benchmark: for each page and tier, prime the tier, check that it answers, load it.

For each tier the page is first put where the tier keeps it (two requests), then one
more request must carry the tier's proof header; a tier that cannot be reached is
reported as unavailable, with what answered instead, and is not measured. Then a warm-up
(discarded) and the measured run. The bench-mode tiers (warm, cold) are also sampled one
request at a time, unloaded, for the breakdown of where a request's time goes.

Ctrl-C stops the benchmark where it is; everything measured so far is kept, and the tier
that was running is kept as partial.
"""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from ..edge.outcomes import Outcome, bypass
from ..stack.probes import http_get
from ..top.model import Reading
from ..top.report import Watch
from .breakdown import Breakdown, breakdown
from .endpoints import Endpoints
from .load import LoadResult, LoadSpec, PythonLoad, WrkLoad
from .tiers import Tier, header_value

__all__ = [
    "BenchPlan",
    "BenchRun",
    "Progress",
    "TierRun",
    "default_paths",
    "run_bench",
]

BREAKDOWN_REQUESTS = 20
"""Bench-mode requests sampled one at a time for the breakdown (bounded in time too)."""

SHOWN_HEADERS = ("x-cache", "x-strata", "cache-control")
"""What an unavailable tier reports of the response that answered instead."""


class Progress(Protocol):
    """What a benchmark tells whoever watches it (the CLI shows it with Rich)."""

    def phase(self, text: str, seconds: float | None = None) -> None: ...

    def tick(self, elapsed: float, responses: int) -> None: ...

    def step_done(self) -> None: ...


class _Silent:
    def phase(self, text: str, seconds: float | None = None) -> None:
        pass

    def tick(self, elapsed: float, responses: int) -> None:
        pass

    def step_done(self) -> None:
        pass


@dataclass
class BenchPlan:
    """What to measure, where, how long and with which load generator."""

    endpoints: Endpoints
    paths: list[str]
    tiers: list[Tier]
    engine: WrkLoad | PythonLoad
    seconds: float = 5.0
    warmup: float = 1.0
    connections: int = 8
    breakdown_requests: int = BREAKDOWN_REQUESTS
    read_metrics: Callable[[], Reading] | None = None
    """Reads the stack's metrics (``strata top``'s sources), before and after each
    measured run, for the hit ratios during it; None: not read (a stack given by URL)."""

    def spec(self, tier: Tier, path: str) -> LoadSpec:
        """The request that should end at ``tier`` for ``path``."""
        ends = self.endpoints
        if tier.route == "public":
            return LoadSpec(
                ends.host,
                ends.port,
                path,
                tier.request_headers(),
                tier.proof_header,
                tier.proof_value,
            )
        return LoadSpec(
            ends.pool_host,
            ends.pool_port,
            path,
            # Varnish forwards the Host without its port; the page cache keys on it.
            tier.request_headers(host=ends.page_host, secret=ends.secret),
            tier.proof_header,
            tier.proof_value,
        )


@dataclass
class TierRun:
    """One page at one tier: measured, unavailable (and why), or cut short."""

    path: str
    tier: Tier
    status: str = "pending"
    """``measured``, ``partial`` (Ctrl-C during the run), ``unavailable``, ``failed`` (the
    load generator failed) or ``not run``."""
    reason: str = ""
    observed: dict[str, str] = field(default_factory=dict)
    load: LoadResult | None = None
    breakdown: Breakdown | None = None
    hit_ratios: dict | None = None
    """What the caches answered during the measured run (:func:`strata.top.report.hit_ratios`)."""


@dataclass
class BenchRun:
    """Everything a benchmark found, in the order it ran."""

    plan: BenchPlan
    runs: list[TierRun]
    started_at: str
    finished_at: str = ""
    interrupted: bool = False

    @property
    def engine(self) -> str:
        return self.plan.engine.label


def default_paths(endpoints: Endpoints) -> list[str]:
    """``/`` and the first article (or other page) linked from the home page."""
    try:
        home = http_get(endpoints.host, endpoints.port, "/", timeout=30)
    except OSError:
        return ["/"]
    html = home.body.decode("utf-8", "replace")
    links = re.findall(r'href="(/[^"#?]*)"', html)
    articles = [link for link in links if link.startswith("/articles/") and link != "/articles/"]
    others = [
        link
        for link in links
        if link != "/"
        and not link.startswith(("/admin", "/accounts", "/-/", "/static", "/me/", "/media"))
        and link.endswith("/")
    ]
    found = (articles or others)[:1]
    return ["/", *found]


def run_bench(plan: BenchPlan, progress: Progress | None = None) -> BenchRun:
    """Run ``plan``; Ctrl-C ends it early with what was measured so far."""
    watch = progress or _Silent()
    runs = [TierRun(path, tier) for path in plan.paths for tier in plan.tiers]
    result = BenchRun(plan=plan, runs=runs, started_at=_now())
    try:
        for run in runs:
            _run_one(plan, run, watch)
            watch.step_done()
            if run.status == "partial":
                result.interrupted = True
                break
    except KeyboardInterrupt:
        result.interrupted = True
    for run in runs:
        if run.status in ("pending", "running"):
            run.status = "not run"
            run.reason = "stopped by Ctrl-C" if result.interrupted else run.reason
    result.finished_at = _now()
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _run_one(plan: BenchPlan, run: TierRun, watch: Progress) -> None:
    tier, path = run.tier, run.path
    spec = plan.spec(tier, path)
    run.status = "running"
    watch.phase(f"{tier.name} {path}: priming")
    if tier.route == "public" and not plan.endpoints.has_accelerator:
        run.status, run.reason = "unavailable", "this stack has no accelerator"
        return
    check = _prime(spec, tier)
    if isinstance(check, str):
        run.status, run.reason = "unavailable", check
        return
    run.observed = {k: v for k, v in check.headers.items() if k in SHOWN_HEADERS}
    if check.status >= 400 or not tier.answered(check.headers):
        run.status = "unavailable"
        run.reason = _why_not(plan, tier, check)
        return
    try:
        if plan.warmup > 0:
            watch.phase(f"{tier.name} {path}: warm-up (discarded)", plan.warmup)
            warm = plan.engine.run(spec, plan.warmup, plan.connections, watch.tick)
            if warm.interrupted:
                run.status, run.reason = "not run", "stopped by Ctrl-C during the warm-up"
                raise KeyboardInterrupt
        watch.phase(f"{tier.name} {path}: measuring", plan.seconds)
        metrics = Watch(plan.read_metrics) if plan.read_metrics is not None else None
        if metrics is not None:
            metrics.start()
        run.load = plan.engine.run(spec, plan.seconds, plan.connections, watch.tick)
        if metrics is not None:
            run.hit_ratios = metrics.stop()
    except RuntimeError as error:  # the load generator itself failed (wrk's own message)
        run.status, run.reason = "failed", str(error)
        return
    if run.load.interrupted:
        run.status, run.reason = "partial", "stopped by Ctrl-C"
        return
    run.status = "measured"
    if tier.bench_mode:
        watch.phase(f"{tier.name} {path}: timing {plan.breakdown_requests} requests, one at a time")
        run.breakdown = breakdown(
            _sample(spec, tier, plan.breakdown_requests, max(2.0, plan.seconds), watch)
        )


def _prime(spec: LoadSpec, tier: Tier):
    """Send the tier's priming requests, then the check request; an error is a string."""
    try:
        for _ in range(tier.primes):
            http_get(spec.host, spec.port, spec.path, headers=spec.headers, timeout=60)
        return http_get(spec.host, spec.port, spec.path, headers=spec.headers, timeout=60)
    except OSError as error:
        return f"no answer from {spec.host}:{spec.port}: {error}"


def _why_not(plan: BenchPlan, tier: Tier, check) -> str:
    """``answered by page-hit, not bypass: bench warm (X-Strata); status 200, …`` and a hint."""
    proof = tier.proof_header.lower()
    seen = [f"{k}: {v}" for k, v in check.headers.items() if k in SHOWN_HEADERS and k != proof]
    text = (
        f"answered by {tier.observed(check.headers)}, not {tier.proof_value} "
        f"({tier.proof_header}; status {check.status}" + "".join(f", {s}" for s in seen) + ")"
    )
    if tier.bench_mode:
        if not plan.endpoints.secret:
            text += "; no secret to send (pass --secret)"
        elif header_value(check.headers, "X-Strata") == Outcome.PAGE_HIT:
            text += (
                "; the page cache answered before bench mode could skip it (a "
                "PageCacheApplication in front of Django that does not know X-Strata-Bench?)"
            )
        elif not (header_value(check.headers, "X-Strata") or "").startswith(bypass("bench")):
            text += (
                "; the app did not answer in bench mode (its StrataMiddleware does not "
                "support X-Strata-Bench, or the secret is wrong)"
            )
    return text


def _sample(spec: LoadSpec, tier: Tier, count: int, limit_s: float, watch: Progress):
    """Up to ``count`` responses of the tier, one at a time on one connection."""
    answers = []
    deadline = time.monotonic() + limit_s
    connection = http.client.HTTPConnection(spec.host, spec.port, timeout=60)
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            try:
                connection.request("GET", spec.path, headers=spec.headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                continue
            headers = response.getheaders()
            if response.status < 400 and tier.answered(headers):
                answers.append(headers)
            watch.tick(limit_s - (deadline - time.monotonic()), len(answers))
    finally:
        connection.close()
    return answers
