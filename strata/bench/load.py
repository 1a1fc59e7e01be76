"""Drive one tier with load for a bounded time, counting only what that tier answered.

Two engines with the same counters: wrk (a Lua ``response()`` callback checks the proof
header of every response), and, when wrk is not installed, a Python fallback (one thread
and one kept-alive ``http.client`` connection per connection asked for) that says it is
one — it measures Python's own client as much as the stack.

Every response is sorted into one of three piles: answered by the intended tier (counted,
timed), answered by another tier (a mismatch, counted by what answered), or an error
(status 400 and up, or a socket error). The Python fallback times only the first pile;
wrk's latency histogram holds every response, so its figures stand only while mismatches
are rare (:attr:`LoadResult.valid`).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .stats import interpolated_percentile
from .tiers import describe, header_value
from .wrk import run_wrk_checked, wrk_available, wrk_version

__all__ = [
    "MISMATCH_LIMIT",
    "LoadResult",
    "LoadSpec",
    "PythonLoad",
    "Tally",
    "WrkLoad",
    "choose_engine",
    "merge",
]

MISMATCH_LIMIT = 0.01
"""Above this share of mismatches, wrk's latency figures (which include them) are not valid."""

Tick = Callable[[float, int], None]
"""Called about five times a second with the seconds elapsed and the responses so far
(wrk reports only at the end: -1)."""


@dataclass(frozen=True)
class LoadSpec:
    """One request, repeated: where it goes, its headers, and the header that proves the tier."""

    host: str
    port: int
    path: str
    headers: dict[str, str]
    proof_header: str
    proof_value: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"


@dataclass
class LoadResult:
    """What one bounded run measured."""

    engine: str
    seconds: float
    connections: int
    requests: int
    """Responses received, whoever answered."""
    answered: int
    """Responses from the intended tier: the ones the figures are about."""
    mismatches: dict[str | None, int]
    """Proof-header value (None: no such header) → responses answered by that instead."""
    errors: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    latency_of: str
    """``answered requests`` or, for wrk, ``all responses``."""
    interrupted: bool = False
    proof_header: str = ""
    proof_value: str = ""

    @property
    def rps(self) -> float:
        """Responses from the intended tier per second."""
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    @property
    def mismatched(self) -> int:
        return sum(self.mismatches.values())

    @property
    def mismatch_share(self) -> float:
        return self.mismatched / self.requests if self.requests else 0.0

    @property
    def latency_excludes_mismatches(self) -> bool:
        return self.latency_of == "answered requests"

    @property
    def valid(self) -> bool:
        """Whether the latency figures describe the intended tier."""
        if not self.answered:
            return False
        return self.latency_excludes_mismatches or self.mismatch_share <= MISMATCH_LIMIT

    def mismatch_lines(self) -> list[str]:
        """``12 of 4,000 requests were answered by page-miss, not page-hit (X-Strata)``."""
        lines = []
        for value, count in sorted(self.mismatches.items(), key=lambda item: -item[1]):
            were = "request was" if self.requests == 1 else "requests were"
            lines.append(
                f"{count:,} of {self.requests:,} {were} answered by "
                f"{describe(self.proof_header, value)}, not {self.proof_value} "
                f"({self.proof_header})"
            )
        return lines


class WrkLoad:
    """wrk, with a Lua script that checks the proof header of every response."""

    is_fallback = False

    def __init__(self, threads: int = 2):
        self.threads = threads
        self.label = wrk_version()

    def run(self, spec: LoadSpec, seconds: float, connections: int, tick: Tick | None = None):
        """Load ``spec`` for ``seconds`` (wrk rounds up to whole seconds)."""
        result = run_wrk_checked(
            spec.url,
            header=spec.proof_header,
            value=spec.proof_value,
            seconds=seconds,
            connections=connections,
            threads=self.threads,
            headers=spec.headers,
            tick=(lambda elapsed: tick(elapsed, -1)) if tick else None,
        )
        mismatches = dict(result.others)
        return LoadResult(
            engine=self.label,
            seconds=result.seconds,
            connections=connections,
            requests=result.requests,
            answered=result.answered or 0,
            mismatches=mismatches,
            errors=result.errors,
            p50_ms=result.p50_ms if result.requests else None,
            p90_ms=result.p90_ms if result.requests else None,
            p99_ms=result.p99_ms if result.requests else None,
            max_ms=result.max_ms if result.requests else None,
            latency_of="all responses",
            interrupted=result.interrupted,
            proof_header=spec.proof_header,
            proof_value=spec.proof_value,
        )


@dataclass
class Tally:
    """The three piles of one connection's responses (the Python fallback's counters)."""

    proof_header: str
    proof_value: str
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    mismatches: Counter = field(default_factory=Counter)
    last_done: float = 0.0

    def record(self, status: int, headers, ms: float) -> None:
        """Sort one response: timed if its tier answered, counted apart if another did."""
        self.requests += 1
        if status >= 400:
            self.errors += 1
            return
        value = header_value(headers, self.proof_header)
        if value == self.proof_value:
            self.latencies_ms.append(ms)
        else:
            self.mismatches[value] += 1


def merge(tallies: list[Tally], engine: str, seconds: float, connections: int) -> LoadResult:
    """One result from every connection's tally; latency figures from the tier's answers only."""
    latencies = sorted(ms for t in tallies for ms in t.latencies_ms)
    mismatches: Counter = Counter()
    for tally in tallies:
        mismatches.update(tally.mismatches)
    first = tallies[0] if tallies else Tally("", "")
    return LoadResult(
        engine=engine,
        seconds=seconds,
        connections=connections,
        requests=sum(t.requests for t in tallies),
        answered=len(latencies),
        mismatches=dict(mismatches),
        errors=sum(t.errors for t in tallies),
        p50_ms=interpolated_percentile(latencies, 50),
        p90_ms=interpolated_percentile(latencies, 90),
        p99_ms=interpolated_percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else None,
        latency_of="answered requests",
        proof_header=first.proof_header,
        proof_value=first.proof_value,
    )


class PythonLoad:
    """Threads with kept-alive ``http.client`` connections: what runs when wrk does not."""

    is_fallback = True

    def __init__(self, reason: str = "wrk not installed", timeout: float = 10.0):
        self.label = f"Python fallback ({reason})"
        self.timeout = timeout

    def run(self, spec: LoadSpec, seconds: float, connections: int, tick: Tick | None = None):
        """Load ``spec`` for ``seconds``; Ctrl-C stops it and returns what was measured."""
        stop = threading.Event()
        started = time.perf_counter()
        deadline = started + seconds
        tallies = [Tally(spec.proof_header, spec.proof_value) for _ in range(connections)]
        workers = [
            threading.Thread(
                target=self._work,
                args=(spec, deadline, stop, tally),
                name=f"strata-bench-{i}",
                daemon=True,
            )
            for i, tally in enumerate(tallies)
        ]
        for worker in workers:
            worker.start()
        interrupted = False
        try:
            while time.perf_counter() < deadline and not stop.wait(0.2):
                if tick is not None:
                    tick(time.perf_counter() - started, sum(t.requests for t in tallies))
            for worker in workers:
                worker.join()
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            for worker in workers:
                worker.join(self.timeout + 1)
        ended = max((t.last_done for t in tallies), default=0.0) or time.perf_counter()
        result = merge(tallies, self.label, max(0.0, ended - started), connections)
        result.interrupted = interrupted
        return result

    def _work(self, spec: LoadSpec, deadline: float, stop: threading.Event, tally: Tally):
        connection: http.client.HTTPConnection | None = None
        while not stop.is_set() and time.perf_counter() < deadline:
            if connection is None:
                connection = http.client.HTTPConnection(spec.host, spec.port, timeout=self.timeout)
            began = time.perf_counter()
            try:
                connection.request("GET", spec.path, headers=spec.headers)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                tally.errors += 1
                connection.close()
                connection = None
                stop.wait(0.05)  # a refused connection must not become a busy loop
                continue
            done = time.perf_counter()
            tally.last_done = done
            tally.record(response.status, response.getheaders(), (done - began) * 1000)
            if response.will_close:
                connection.close()
                connection = None
        if connection is not None:
            connection.close()


def choose_engine(python_load: bool = False, threads: int = 2) -> WrkLoad | PythonLoad:
    """wrk when it is installed (unless ``python_load``), the Python fallback otherwise."""
    if python_load:
        return PythonLoad("--python-load")
    if not wrk_available():
        return PythonLoad("wrk not installed")
    return WrkLoad(threads=threads)
