"""The history of a check: every read and write the clients made, and the phases.

Times come from :func:`now`, ``CLOCK_MONOTONIC``: on Linux one clock for the whole
machine, so the times that different client processes and the coordinator record can
be compared with each other, and no NTP step or daylight-saving change moves them.

Each client appends one JSON object per line to its own file; the coordinator merges
them. Reads store the markers they saw as compact ranges (``"1-16,18"``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .markers import decode_seqs, encode_seqs

__all__ = [
    "now",
    "Read",
    "Write",
    "Phase",
    "History",
    "ACKED",
    "UNKNOWN",
    "REJECTED",
    "NOT_SENT",
    "read_line",
    "write_line",
    "load_lines",
]

ACKED = "acked"  # the site answered with its success status: committed
UNKNOWN = "unknown"  # 5xx, timeout or a dropped connection: may or may not have committed
REJECTED = "rejected"  # any other answer (a form error, 403): not committed
NOT_SENT = "not-sent"  # the form page could not be read: nothing was posted


def now() -> float:
    """Seconds on ``CLOCK_MONOTONIC``, comparable across the processes of one machine."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class Write:
    """One write: key ``key`` gets sequence number ``seq``."""

    client: int
    key: str
    seq: int
    path: str
    sent: float
    ended: float
    status: int | None  # the HTTP status; a command's exit status (-9: SIGKILL)
    outcome: str
    error: str = ""
    via: str = "form"  # "form" (HTTP) or "command" (a management command's process)
    killed: bool = False  # a command SIGKILLed right after its commit (writer-kill)

    @property
    def acked(self) -> float | None:
        """When it committed (its success answer arrived), or None."""
        return self.ended if self.outcome == ACKED else None


@dataclass(frozen=True)
class Read:
    """One page read: when it was sent and answered, what answered, which markers it showed."""

    client: int
    path: str
    who: str  # "anon", a role name, or "final" for the reads after the traffic
    start: float
    end: float
    status: int | None
    seen: dict[str, tuple[int, ...]] = field(default_factory=dict)
    must: tuple[str, ...] = ()  # keys that this page always shows
    x_cache: str | None = None
    x_strata: str | None = None
    server: str | None = None
    error: str = ""
    kind: str = "read"  # "read", "form" (a write's form page) or "final"

    @property
    def anonymous(self) -> bool:
        return self.who in ("anon", "final")


@dataclass
class Phase:
    """A phase of the run: the baseline, or one fault from applied to recovered."""

    name: str
    start: float
    end: float = 0.0
    fault: str | None = None
    applied: float | None = None
    healed: float | None = None
    recovered: float | None = None
    taken_out: float | None = None  # when the load balancer marked the victim down
    excuses_purges: bool = False  # purge-fail: stale reads while purges failed are expected
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def recovery_seconds(self) -> float | None:
        if self.recovered is None or self.healed is None:
            return None
        return max(0.0, self.recovered - self.healed)

    def as_dict(self) -> dict:
        return asdict(self)


def read_line(read: Read) -> str:
    """A read as one line of JSON."""
    row = {
        "t": "r",
        "c": read.client,
        "p": read.path,
        "w": read.who,
        "s": round(read.start, 6),
        "e": round(read.end, 6),
        "st": read.status,
    }
    if read.seen:
        row["m"] = {key: encode_seqs(seqs) for key, seqs in read.seen.items()}
    if read.must:
        row["k"] = list(read.must)
    for name, value in (
        ("xc", read.x_cache),
        ("xs", read.x_strata),
        ("sv", read.server),
        ("err", read.error),
    ):
        if value:
            row[name] = value
    if read.kind != "read":
        row["kind"] = read.kind
    return json.dumps(row, separators=(",", ":"))


def write_line(write: Write) -> str:
    """A write as one line of JSON."""
    row = {
        "t": "w",
        "c": write.client,
        "k": write.key,
        "q": write.seq,
        "p": write.path,
        "s": round(write.sent, 6),
        "e": round(write.ended, 6),
        "st": write.status,
        "o": write.outcome,
    }
    if write.error:
        row["err"] = write.error
    if write.via != "form":
        row["via"] = write.via
    if write.killed:
        row["kill"] = 1
    return json.dumps(row, separators=(",", ":"))


def _read_of(row: dict) -> Read:
    return Read(
        client=row["c"],
        path=row["p"],
        who=row["w"],
        start=row["s"],
        end=row["e"],
        status=row.get("st"),
        seen={key: decode_seqs(text) for key, text in row.get("m", {}).items()},
        must=tuple(row.get("k", ())),
        x_cache=row.get("xc"),
        x_strata=row.get("xs"),
        server=row.get("sv"),
        error=row.get("err", ""),
        kind=row.get("kind", "read"),
    )


def _write_of(row: dict) -> Write:
    return Write(
        client=row["c"],
        key=row["k"],
        seq=row["q"],
        path=row["p"],
        sent=row["s"],
        ended=row["e"],
        status=row.get("st"),
        outcome=row["o"],
        error=row.get("err", ""),
        via=row.get("via", "form"),
        killed=bool(row.get("kill")),
    )


@dataclass
class History:
    """Every read and write of a run (any order)."""

    reads: list[Read] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what clients reported (login failures, ...)
    clients: list[dict] = field(default_factory=list)  # per-client summaries (CPU time, ...)

    def add_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a killed client
            kind = row.get("t")
            if kind == "r":
                self.reads.append(_read_of(row))
            elif kind == "w":
                self.writes.append(_write_of(row))
            elif kind == "note":
                self.notes.append(row.get("text", ""))
            elif kind == "client":
                self.clients.append(row)


def load_lines(paths: Iterable[Path]) -> Iterator[str]:
    """The lines of the clients' files (missing files are skipped)."""
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                yield from fh
        except OSError:
            continue
