"""Where a request's time goes: database, cache, templates, the app's own Python.

The seed's rule: "for requests passing through to Django the total time spent should not
be overwhelmingly dominated by a single component (database, cache, etc.). The majority
of time should be spent working in Python with no more than 30% or so spent in any given
component." Bench-mode responses carry their timings in ``Server-Timing`` (W3C Server
Timing: ``db;dur=12.3;desc="4 queries", cache;dur=…, tpl;dur=…, app;dur=…, total;dur=…``,
milliseconds), the query count in ``X-Strata-Queries`` and the slowest queries in
``X-Strata-Slow-Queries``. These functions add up N such responses; they do no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .tiers import header_value

__all__ = [
    "COMPONENTS",
    "RULE_SHARE",
    "Breakdown",
    "SlowQuery",
    "breakdown",
    "parse_server_timing",
]

COMPONENTS = {"db": "database", "cache": "cache", "tpl": "templates", "app": "app (Python)"}
"""Server-Timing metric names, in report order, and what a report calls them."""

RULE_SHARE = 0.30
"""No component but the app's own Python should take more than this share of a request."""

RULED = ("db", "cache", "tpl")
"""The components the 30% rule limits; the rest of the time is the app working in Python."""

Headers = Mapping[str, str] | list[tuple[str, str]]


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
        out, escaped = [], False
        for char in value:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def parse_server_timing(value: str) -> dict[str, dict[str, str]]:
    """``db;dur=12.3;desc="4 queries", app;dur=5`` → ``{"db": {"dur": "12.3", "desc": …}, …}``.

    Metric names are case-insensitive; the first occurrence of a name wins (W3C Server
    Timing, "process a server-timing header"); malformed parts are skipped.
    """
    metrics: dict[str, dict[str, str]] = {}
    for entry in _split_outside_quotes(value, ","):
        pieces = _split_outside_quotes(entry, ";")
        name = pieces[0].strip().lower()
        if not name or "=" in name or " " in name or name in metrics:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            key, _, raw = piece.partition("=")
            key = key.strip().lower()
            if key and key not in params:
                params[key] = _unquote(raw)
        metrics[name] = params
    return metrics


def _durations(value: str) -> dict[str, float]:
    durations = {}
    for name, params in parse_server_timing(value).items():
        try:
            durations[name] = float(params.get("dur", ""))
        except ValueError:
            continue
    return durations


@dataclass
class SlowQuery:
    """One SQL statement among the slowest of the sampled requests."""

    sql: str
    max_ms: float
    mean_ms: float
    seen: int


@dataclass
class Breakdown:
    """The mean of N requests' timings, each component's share, and the 30% verdict."""

    requests: int
    total_ms: float
    components_ms: dict[str, float]
    shares: dict[str, float]
    queries: float | None = None
    slowest: list[SlowQuery] = field(default_factory=list)
    views: list[str] = field(default_factory=list)

    @property
    def over_rule(self) -> list[tuple[str, float]]:
        """The components over 30%, largest first."""
        over = [(name, self.shares.get(name, 0.0)) for name in RULED]
        return sorted(
            [(name, share) for name, share in over if share > RULE_SHARE], key=lambda x: -x[1]
        )

    @property
    def passes(self) -> bool:
        return not self.over_rule

    @property
    def verdict(self) -> str:
        """One sentence naming the component over 30%, or the largest one under it."""
        app = self.shares.get("app", 0.0)
        if self.over_rule:
            named = ", ".join(f"{COMPONENTS[name]} {share:.0%}" for name, share in self.over_rule)
            return (
                f"fails the 30% rule: {named} of the request's time "
                f"(the app's own Python {app:.0%})"
            )
        largest = max(RULED, key=lambda name: self.shares.get(name, 0.0))
        return (
            f"passes the 30% rule: no component over 30% (largest: {COMPONENTS[largest]} "
            f"{self.shares.get(largest, 0.0):.0%}; the app's own Python {app:.0%})"
        )

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "total_ms": round(self.total_ms, 3),
            "components_ms": {k: round(v, 3) for k, v in self.components_ms.items()},
            "shares": {k: round(v, 4) for k, v in self.shares.items()},
            "queries": self.queries,
            "passes_30_percent_rule": self.passes,
            "over_30_percent": [name for name, _ in self.over_rule],
            "verdict": self.verdict,
            "slowest_queries": [q.__dict__ for q in self.slowest],
            "views": self.views,
        }


def breakdown(responses: Iterable[Headers], slowest: int = 3) -> Breakdown | None:
    """Add up the timings of ``responses`` (their headers); None when none had any."""
    sums = dict.fromkeys(COMPONENTS, 0.0)
    total_sum, counted = 0.0, 0
    query_counts: list[int] = []
    queries: dict[str, list[float]] = {}
    views: list[str] = []
    for headers in responses:
        timing = header_value(headers, "Server-Timing")
        durations = _durations(timing) if timing else {}
        if not any(name in durations for name in COMPONENTS):
            continue
        counted += 1
        parts = {name: max(0.0, durations.get(name, 0.0)) for name in ("db", "cache", "tpl")}
        total = durations.get("total")
        if "app" in durations:
            parts["app"] = max(0.0, durations["app"])
        else:  # the app is what the named components leave of the total
            parts["app"] = max(0.0, (total or 0.0) - sum(parts.values()))
        if total is None or total <= 0:
            total = sum(parts.values())
        for name, ms in parts.items():
            sums[name] += ms
        total_sum += total
        count = header_value(headers, "X-Strata-Queries")
        if count and count.isdigit():
            query_counts.append(int(count))
        view = header_value(headers, "X-Strata-Timing-View")
        if view and view not in views:
            views.append(view)
        for query in _slow_queries(header_value(headers, "X-Strata-Slow-Queries")):
            queries.setdefault(query[1], []).append(query[0])
    if not counted:
        return None
    ranked = sorted(
        (
            SlowQuery(sql=sql, max_ms=max(times), mean_ms=sum(times) / len(times), seen=len(times))
            for sql, times in queries.items()
        ),
        key=lambda q: -q.max_ms,
    )
    return Breakdown(
        requests=counted,
        total_ms=total_sum / counted,
        components_ms={name: ms / counted for name, ms in sums.items()},
        shares={name: (ms / total_sum if total_sum else 0.0) for name, ms in sums.items()},
        queries=sum(query_counts) / len(query_counts) if query_counts else None,
        slowest=ranked[:slowest],
        views=views,
    )


def _slow_queries(value: str | None) -> list[tuple[float, str]]:
    if not value:
        return []
    try:
        items = json.loads(value)
    except ValueError:
        return []
    found = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("sql"), str):
            try:
                found.append((float(item.get("ms", 0.0)), item["sql"]))
            except (TypeError, ValueError):
                continue
    return found
