"""The four tiers of the seed's response-time table, and how to prove which one answered.

*High Performance Django*, "The Big Picture", gives rough response times to shoot for:
a Varnish cache hit ~10 ms, a Django per-site cache hit ~35 ms, Django with a warm cache
100–300 ms, Django with a cold cache 500 ms–2 s. Each tier here says how a request is
addressed so that its journey should end there, and which response header proves that it
did: a benchmark counts only the requests whose header says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..edge.outcomes import Outcome, bypass

__all__ = [
    "BENCH_HEADER",
    "SECRET_HEADER",
    "TIERS",
    "Target",
    "describe",
    "Tier",
    "header_value",
    "tiers_named",
]

BENCH_HEADER = "X-Strata-Bench"
"""Asks ``StrataMiddleware`` to skip the page cache (``warm``) or every Strata cache (``cold``)."""

SECRET_HEADER = "X-Strata-Bench-Secret"
"""The stack's purge secret: only someone who runs the stack may switch caches off."""


@dataclass(frozen=True)
class Target:
    """A response time from the seed's table: up to ``high_ms``, from ``low_ms`` if a range."""

    high_ms: float
    low_ms: float | None = None

    @property
    def label(self) -> str:
        """As the seed writes it: ``10 ms``, ``100–300 ms``, ``500 ms–2 s``."""
        high = _ms_label(self.high_ms)
        if self.low_ms is None:
            return high
        low = _ms_label(self.low_ms)
        if low.endswith(" ms") and high.endswith(" ms"):
            low = low[:-3]
        return f"{low}–{high}"

    def ratio(self, ms: float) -> float:
        """How many times the target's upper bound ``ms`` is (1.0 or less: on target)."""
        return ms / self.high_ms

    def verdict(self, ms: float) -> str:
        """``on target``, ``2.3× the target``, or, past five times, room for improvement."""
        ratio = self.ratio(ms)
        if ratio <= 1:
            return "on target"
        if ratio < 5:
            return f"{ratio:.1f}× the target"
        # The seed: "If your application is five times slower, there's going to be a lot
        # of room for improvement."
        return f"{ratio:.0f}× the target: room for improvement"


def _ms_label(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:g} s"
    return f"{ms:g} ms"


@dataclass(frozen=True)
class Tier:
    """Where a request's journey should end, how to send it there, and how to tell."""

    name: str
    title: str
    target: Target
    route: str
    """``public`` (the load balancer, as a visitor) or ``pool`` (the app servers directly)."""
    proof_header: str
    proof_value: str
    bench_mode: str | None = None
    primes: int = 2
    """Requests sent before the check request, so that the tier has the page."""

    def request_headers(self, host: str | None = None, secret: str = "") -> dict[str, str]:
        """The headers that address this tier (no cookies: nothing personal)."""
        headers: dict[str, str] = {}
        if host is not None:
            headers["Host"] = host
        if self.bench_mode:
            headers[BENCH_HEADER] = self.bench_mode
            headers[SECRET_HEADER] = secret
        return headers

    def answered(self, headers: Mapping[str, str] | list[tuple[str, str]]) -> bool:
        """True when the response's headers prove that this tier answered."""
        return header_value(headers, self.proof_header) == self.proof_value

    def observed(self, headers: Mapping[str, str] | list[tuple[str, str]]) -> str:
        """What answered instead, in the proof header's words (``page-miss``, ``MISS``)."""
        return describe(self.proof_header, header_value(headers, self.proof_header))


def describe(header: str, value: str | None) -> str:
    """A proof header's value as a report names it; a missing header says so."""
    return value if value is not None else f"(no {header} header)"


def header_value(headers: Mapping[str, str] | list[tuple[str, str]], name: str) -> str | None:
    """The value of header ``name`` (any case), stripped; None when it is absent."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    for key, value in items:
        if key.lower() == wanted:
            return value.strip()
    return None


TIERS: tuple[Tier, ...] = (
    Tier(
        name="accelerator",
        title="Varnish cache hit",
        target=Target(10),
        route="public",
        proof_header="X-Cache",
        proof_value="HIT",
    ),
    Tier(
        name="page",
        title="Django page-cache hit",
        target=Target(35),
        route="pool",
        proof_header="X-Strata",
        proof_value=Outcome.PAGE_HIT.value,
    ),
    Tier(
        name="warm",
        title="Django with warm cache",
        target=Target(300, 100),
        route="pool",
        proof_header="X-Strata",
        proof_value=bypass("bench warm"),
        bench_mode="warm",
    ),
    Tier(
        name="cold",
        title="Django with cold cache",
        target=Target(2000, 500),
        route="pool",
        proof_header="X-Strata",
        proof_value=bypass("bench cold"),
        bench_mode="cold",
        primes=0,
    ),
)


def tiers_named(names: str | list[str]) -> list[Tier]:
    """The tiers for ``accelerator,page,warm,cold`` (any subset, table order kept)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    known = {tier.name: tier for tier in TIERS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"unknown tier {', '.join(unknown)} (choose from {', '.join(t.name for t in TIERS)})"
        )
    if not names:
        raise ValueError(f"no tier given (choose from {', '.join(t.name for t in TIERS)})")
    return [tier for tier in TIERS if tier.name in names]
