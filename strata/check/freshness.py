"""The freshness checker: pure functions over a history, no network.

The rule (``docs/design.md``, "no stale content, ever, unintentionally"): a read must show the
newest write of every key on its page that was acknowledged before the read *started*,
or a newer one. Each key has exactly one writer, so its sequence numbers increase in
commit order, and "shows" is one number:

* ``keeps = "all"`` (comments: every write stays on the page): the highest sequence
  number on the page;
* ``keeps = "last"`` (a title: each write replaces the previous one): the lowest one on
  the page, so that one stale fragment of an otherwise fresh page is caught;
* a key that the page must show (``shows_on``) but that has no marker there shows 0,
  the content from before the run.

A stale read's *age* is the time from the commit of the oldest acknowledged write it
fails to show to the read's start: how long the page had been stale. (Measured from the
newest missed write instead, a page stuck for a minute under frequent writes would look
a few milliseconds old.) Ages are bucketed [0, 50 ms), [50 ms, 1 s), ≥ 1 s, and a read
older than the purge window (``--window``, Strata purges right after commit and again
two seconds later) is a failure, except while a ``purge-fail`` fault kept the purge path
down: stale reads of writes committed then, read before the fault healed plus the
purge retry interval plus the window, are reported apart, as expected.

A phantom is a sequence number that was never written (above the last one sent, or one
whose form was rejected). A lost write is an acknowledged one that the pages, read after
the run with every cache bypassed, do not show.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from ..bench.stats import percentile
from .history import ACKED, NOT_SENT, UNKNOWN, History, Phase, Read, Write
from .markers import encode_seqs

__all__ = [
    "Verdict",
    "PhaseFigures",
    "StaleRead",
    "Phantom",
    "LostWrite",
    "FinalView",
    "check",
    "judge_final",
    "bucket_of",
    "BUCKETS",
    "MAX_SAMPLES",
]

BUCKETS = ("0ms", "50ms", "1s")
"""Stale reads by age: [0, 50 ms), [50 ms, 1 s), 1 s and more."""
FAILURES_KEPT = 5
"""How many failed writes each phase describes in the report (who answered, what it said)."""

MAX_SAMPLES = 1000
"""Stale reads kept per phase in the report (all of them are counted)."""

_WINDOW_SCAN = 120.0  # seconds after a commit in which its purge window is looked for


def bucket_of(age: float) -> str:
    """The bucket of a stale read ``age`` seconds after the commit it missed."""
    if age < 0.05:
        return "0ms"
    if age < 1.0:
        return "50ms"
    return "1s"


@dataclass
class StaleRead:
    """A read that showed an older state of ``key`` than had committed before it started."""

    phase: str
    path: str
    key: str
    who: str
    kind: str
    shown: int
    expected: int  # the newest acknowledged before the read started
    missed: int  # the oldest acknowledged one it does not show
    age: float  # seconds from the commit of ``missed`` to the read's start
    start: float
    x_cache: str | None
    x_strata: str | None
    server: str | None
    excused: bool = False  # committed while the purge path was down (purge-fail)

    def as_dict(self) -> dict:
        row = asdict(self)
        row["age_ms"] = round(self.age * 1000, 1)
        del row["age"]
        return row


@dataclass
class Phantom:
    """A sequence number that was never written, seen on a page."""

    phase: str
    path: str
    key: str
    seq: int
    where: str  # "read" or "final"
    start: float | None = None
    x_cache: str | None = None
    x_strata: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LostWrite:
    """An acknowledged write that the pages do not show after the run."""

    phase: str
    key: str
    seq: int
    acked: float
    final: str  # what the page showed: "1-16,18" or "title at v12"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FinalView:
    """A key as its page showed it after the run, every cache bypassed."""

    key: str
    path: str
    seen: tuple[int, ...] = ()
    error: str = ""  # the page could not be read: the key is unverified


@dataclass
class PhaseFigures:
    """Counts of one phase (by when each request started, each write committed)."""

    name: str
    reads: int = 0
    reads_anonymous: int = 0
    reads_logged_in: int = 0
    reads_checked: int = 0
    reads_5xx: int = 0
    reads_anonymous_5xx: int = 0
    reads_errors: int = 0
    x_cache: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)  # answers other than 200, 30x
    failed_writes: list[str] = field(default_factory=list)  # what the first 5xx writes said
    writes_sent: int = 0
    writes_acked: int = 0
    writes_unknown: int = 0
    writes_rejected: int = 0
    writes_not_sent: int = 0
    writes_5xx: int = 0
    writes_errors: int = 0
    writes_command: int = 0  # made by a management command's process
    writes_killed: int = 0  # ... SIGKILLed right after its commit (writer-kill)
    stale: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    stale_purge_down: int = 0
    beyond_window: int = 0
    phantoms: int = 0
    lost: int = 0
    unknown_committed: int = 0
    unknown_not_committed: int = 0
    windows: list[float] = field(default_factory=list)
    windows_unseen: int = 0  # acknowledged writes no later accelerator read showed
    observed: list[float] = field(default_factory=list)  # commit → last stale read seen

    @property
    def stale_total(self) -> int:
        return sum(self.stale.values())

    @property
    def errors(self) -> int:
        return self.reads_5xx + self.reads_errors + self.writes_5xx + self.writes_errors

    def window_summary(self) -> dict[str, float | None]:
        return {
            "p50_ms": _ms(percentile(self.windows, 0.50)),
            "p99_ms": _ms(percentile(self.windows, 0.99)),
            "max_ms": _ms(max(self.windows) if self.windows else None),
            "writes": len(self.windows),
            "unseen": self.windows_unseen,
            "observed_stale_p99_ms": _ms(percentile(self.observed, 0.99)),
            "observed_stale_max_ms": _ms(max(self.observed) if self.observed else None),
        }

    def count_status(self, status: int | None) -> None:
        if status is None or status == 200 or 300 <= status < 400:
            return
        name = str(status)
        self.statuses[name] = self.statuses.get(name, 0) + 1

    def as_dict(self) -> dict:
        row = asdict(self)
        del row["windows"]
        del row["observed"]
        row["stale_total"] = self.stale_total
        row["purge_window"] = self.window_summary()
        return row


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


@dataclass
class Verdict:
    """What the checker found, phase by phase."""

    phases: list[PhaseFigures]
    stale_reads: list[StaleRead]  # a sample: at most MAX_SAMPLES per phase
    phantoms: list[Phantom]
    lost: list[LostWrite]
    unverified: list[str]  # keys whose page could not be read after the run
    window: float

    @property
    def beyond_window(self) -> int:
        return sum(p.beyond_window for p in self.phases)

    @property
    def failed(self) -> bool:
        """True when the run found what ``strata check`` exists to find."""
        return bool(self.beyond_window or self.phantoms or self.lost or self.unverified)

    def phase(self, name: str) -> PhaseFigures:
        return next(p for p in self.phases if p.name == name)


class _Keys:
    """Per key: the writes in sequence order, and which sequence numbers could show."""

    def __init__(self, writes: Iterable[Write]):
        by_key: dict[str, list[Write]] = defaultdict(list)
        for write in writes:
            by_key[write.key].append(write)
        self.acked: dict[str, list[Write]] = {}
        self.ack_times: dict[str, list[float]] = {}
        self.acked_seqs: dict[str, list[int]] = {}
        self.possible: dict[str, set[int]] = {}
        self.max_possible: dict[str, int] = {}
        for key, items in by_key.items():
            items.sort(key=lambda w: w.seq)
            acked = [w for w in items if w.outcome == ACKED]
            # One writer per key, one write at a time: commits come in sequence order.
            self.acked[key] = acked
            self.ack_times[key] = [w.ended for w in acked]
            self.acked_seqs[key] = [w.seq for w in acked]
            possible = {w.seq for w in items if w.outcome in (ACKED, UNKNOWN)}
            self.possible[key] = possible
            self.max_possible[key] = max(possible, default=0)

    def expected(self, key: str, start: float) -> int:
        """The newest sequence number of ``key`` acknowledged before ``start`` (0: none)."""
        times = self.ack_times.get(key)
        if not times:
            return 0
        index = bisect.bisect_right(times, start)
        return self.acked[key][index - 1].seq if index else 0

    def oldest_missed(self, key: str, shown: int) -> Write:
        """The first acknowledged write of ``key`` after sequence number ``shown``."""
        index = bisect.bisect_right(self.acked_seqs[key], shown)
        return self.acked[key][index]

    def impossible(self, key: str, seqs: tuple[int, ...]) -> list[int]:
        possible = self.possible.get(key)
        if possible is None:
            return list(seqs)
        if seqs and seqs[-1] <= self.max_possible[key] and len(possible) == self.max_possible[key]:
            return []  # every number up to the last one sent could have committed
        return [s for s in seqs if s not in possible]


class _Phases:
    def __init__(self, phases: list[Phase], purge_retry: float = 0.0):
        self.purge_retry = purge_retry
        self.phases = sorted(phases, key=lambda p: p.start)
        self.starts = [p.start for p in self.phases]
        # The purge-fail phases that were applied, each with the time it was.
        self.purge_down: list[tuple[Phase, float]] = [
            (p, p.applied) for p in self.phases if p.excuses_purges and p.applied is not None
        ]

    def of(self, t: float) -> Phase:
        index = bisect.bisect_right(self.starts, t) - 1
        return self.phases[max(index, 0)]

    def excused(self, committed: float, read_start: float, window: float) -> bool:
        for phase, applied in self.purge_down:
            healed = phase.healed if phase.healed is not None else phase.end
            horizon = healed + self.purge_retry + window
            if applied - window <= committed <= healed and read_start <= horizon:
                return True
        return False


def _shown(read: Read, key: str, keeps: str) -> int:
    seqs = read.seen.get(key)
    if not seqs:
        return 0
    return seqs[-1] if keeps == "all" else seqs[0]


def _write_name(key: str) -> str:
    return key.rstrip("0123456789")


def check(
    history: History,
    phases: list[Phase],
    window: float,
    keeps: dict[str, str],
    final: list[FinalView] | None = None,
    purge_retry: float = 0.0,
) -> Verdict:
    """Check every read of ``history`` against its writes; ``keeps`` maps a write's name
    to ``"all"`` or ``"last"``; ``final`` is what the pages showed after the run;
    ``purge_retry``: the longest wait between two retries of a failed purge (a page
    stale while purges failed may stay so that long after the fault healed, plus the
    window)."""
    if not phases:
        raise ValueError("a history needs at least one phase")
    timeline = _Phases(phases, purge_retry)
    figures = {p.name: PhaseFigures(p.name) for p in timeline.phases}
    keys = _Keys(history.writes)
    samples: dict[str, int] = defaultdict(int)
    stale_reads: list[StaleRead] = []
    phantoms: list[Phantom] = []

    for write in history.writes:
        # A write belongs to the phase its answer came in: one still in flight when a fault
        # was applied (an app server killed under it) is that fault's, not the phase before.
        figure = figures[timeline.of(write.ended).name]
        if write.outcome == NOT_SENT:
            figure.writes_not_sent += 1
            continue
        figure.writes_sent += 1
        if write.outcome == ACKED:
            figures[timeline.of(write.ended).name].writes_acked += 1
        elif write.outcome == UNKNOWN:
            figure.writes_unknown += 1
        else:
            figure.writes_rejected += 1
        if write.via == "command":
            # An exit status, not an HTTP one: a failed command is an error.
            figure.writes_command += 1
            figure.writes_killed += write.killed
            figure.writes_errors += write.outcome == UNKNOWN
            continue
        figure.count_status(write.status)
        if write.status is None:
            figure.writes_errors += 1
        elif write.status >= 500:
            figure.writes_5xx += 1
            if len(figure.failed_writes) < FAILURES_KEPT:
                figure.failed_writes.append(f"{write.path}: {write.error}")

    # Reads through the accelerator that show each key, for the purge windows.
    shared: dict[str, list[tuple[float, float, int]]] = defaultdict(list)

    for read in history.reads:
        phase = timeline.of(read.start)
        figure = figures[phase.name]
        figure.reads += 1
        if read.anonymous:
            figure.reads_anonymous += 1
        else:
            figure.reads_logged_in += 1
        if read.status is None:
            figure.reads_errors += 1
            continue
        figure.count_status(read.status)
        if read.status >= 500:
            figure.reads_5xx += 1
            if read.anonymous:
                figure.reads_anonymous_5xx += 1
        if read.x_cache:
            figure.x_cache[read.x_cache] = figure.x_cache.get(read.x_cache, 0) + 1
        if read.status != 200:
            continue
        shown_keys = set(read.seen) | set(read.must)
        if not shown_keys:
            continue
        figure.reads_checked += 1
        found: list[StaleRead] = []
        for key in sorted(shown_keys):
            keep = keeps.get(_write_name(key), "last")
            for seq in keys.impossible(key, read.seen.get(key, ())):
                figure.phantoms += 1
                phantoms.append(
                    Phantom(
                        phase.name,
                        read.path,
                        key,
                        seq,
                        "read",
                        read.start,
                        read.x_cache,
                        read.x_strata,
                    )
                )
            shown = _shown(read, key, keep)
            if read.anonymous and read.x_cache and key in keys.acked:
                shared[key].append((read.start, read.end, shown))
            expected = keys.expected(key, read.start)
            if shown >= expected:
                continue
            missed = keys.oldest_missed(key, shown)
            found.append(
                StaleRead(
                    phase=phase.name,
                    path=read.path,
                    key=key,
                    who=read.who,
                    kind=read.kind,
                    shown=shown,
                    expected=expected,
                    missed=missed.seq,
                    age=read.start - missed.ended,
                    start=read.start,
                    x_cache=read.x_cache,
                    x_strata=read.x_strata,
                    server=read.server,
                    excused=timeline.excused(missed.ended, read.start, window),
                )
            )
        if not found:
            continue
        for stale in found:
            if samples[phase.name] < MAX_SAMPLES:
                samples[phase.name] += 1
                stale_reads.append(stale)
        counted = [s for s in found if not s.excused]
        if counted:
            worst = max(counted, key=lambda s: s.age)
            figure.stale[bucket_of(worst.age)] += 1
            if worst.age > window:
                figure.beyond_window += 1
        else:
            figure.stale_purge_down += 1

    _purge_windows(keys, shared, timeline, figures)

    lost: list[LostWrite] = []
    unverified: list[str] = []
    if final is not None:
        lost, final_phantoms, unverified = judge_final(
            history.writes, final, keeps, timeline, figures
        )
        phantoms += final_phantoms

    return Verdict(
        phases=[figures[p.name] for p in timeline.phases],
        stale_reads=stale_reads,
        phantoms=phantoms,
        lost=lost,
        unverified=unverified,
        window=window,
    )


def _purge_windows(keys: _Keys, shared, timeline: _Phases, figures) -> None:
    """Commit → the first read through the accelerator that shows it, per acked write.

    With reads every few hundred milliseconds, that is mostly the time until the next
    read of the page; beside it, ``observed``: commit → the last read through the
    accelerator, before the key's next write, that still showed older content (0 when
    none did). It catches a page that was fresh, then stale again (a render from before
    the commit stored after the first purge, until the second one).
    """
    for key, acked in keys.acked.items():
        reads = sorted(shared.get(key, ()))
        starts = [r[0] for r in reads]
        longest = max((r[1] - r[0] for r in reads), default=0.0)
        for number, write in enumerate(acked):
            committed = write.ended
            # Staleness counts until the key's next write (then it is that write's).
            until = acked[number + 1].ended if number + 1 < len(acked) else math.inf
            figure = figures[timeline.of(committed).name]
            index = bisect.bisect_left(starts, committed - longest)
            found = None
            stale_for = 0.0
            while index < len(reads) and reads[index][0] <= committed + _WINDOW_SCAN:
                start, end, shown = reads[index]
                if found is None and end >= committed and shown >= write.seq:
                    found = max(0.0, start - committed)
                elif committed < start <= until and shown < write.seq:
                    stale_for = start - committed
                if found is not None and start > until:
                    break
                index += 1
            if found is None:
                figure.windows_unseen += 1
            else:
                figure.windows.append(found)
                figure.observed.append(stale_for)


def judge_final(
    writes: list[Write],
    final: list[FinalView],
    keeps: dict[str, str],
    timeline: _Phases | None = None,
    figures: dict[str, PhaseFigures] | None = None,
) -> tuple[list[LostWrite], list[Phantom], list[str]]:
    """Lost writes, phantoms and unverified keys, from the pages as they are after the run."""
    keys = _Keys(writes)
    by_key: dict[str, list[Write]] = defaultdict(list)
    for write in writes:
        by_key[write.key].append(write)
    views = {view.key: view for view in final}
    lost: list[LostWrite] = []
    phantoms: list[Phantom] = []
    unverified: list[str] = []

    def phase_name(t: float) -> str:
        return timeline.of(t).name if timeline else ""

    last_phase = timeline.phases[-1].name if timeline else ""

    def count(name: str, attribute: str) -> None:
        if figures is not None and name in figures:
            setattr(figures[name], attribute, getattr(figures[name], attribute) + 1)

    for key, items in sorted(by_key.items()):
        acked = [w for w in items if w.outcome == ACKED]
        unknown = [w for w in items if w.outcome == UNKNOWN]
        view = views.get(key)
        if view is None or view.error:
            if acked or unknown:
                unverified.append(key)
            continue
        seen = set(view.seen)
        for seq in keys.impossible(key, tuple(sorted(seen))):
            phantoms.append(Phantom(last_phase, view.path, key, seq, "final"))
            count(last_phase, "phantoms")
        keep = keeps.get(_write_name(key), "last")
        if keep == "all":
            for write in acked:
                if write.seq not in seen:
                    name = phase_name(write.ended)
                    lost.append(
                        LostWrite(name, key, write.seq, write.ended, encode_seqs(seen) or "none")
                    )
                    count(name, "lost")
            for write in unknown:
                count(
                    phase_name(write.sent),
                    "unknown_committed" if write.seq in seen else "unknown_not_committed",
                )
        else:
            final_seq = min(seen) if seen else 0
            for write in acked:
                if write.seq > final_seq:
                    name = phase_name(write.ended)
                    lost.append(LostWrite(name, key, write.seq, write.ended, f"shows v{final_seq}"))
                    count(name, "lost")
            last_acked = acked[-1].seq if acked else 0
            for write in unknown:
                if write.seq > last_acked:
                    committed = final_seq >= write.seq
                    count(
                        phase_name(write.sent),
                        "unknown_committed" if committed else "unknown_not_committed",
                    )
    return lost, phantoms, unverified
