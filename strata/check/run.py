"""One run of ``strata check``: clients, the fault schedule, the final reads, the verdict.

The coordinator (this process) logs in and finds the scenario's objects, starts the
client processes, and runs the phases while they send traffic: a baseline without
faults, then one phase per fault (applied at the phase's start, healed after the hold,
then watched until the stack has recovered). Whatever happens — an error, Ctrl-C — every
fault it applied is healed in a ``finally`` before anything else. Then the clients stop,
every page is read once more through the accelerator, the written keys are read with
every cache off, and the freshness checker judges the whole history.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..edge.purge import MAX_BACKOFF
from ..httpclient import Session
from ..stack.runstate import NoStack
from .commands import WITHOUT_BUS, Writer
from .discover import DiscoveryError, find_objects
from .faults import Fault, FaultContext, fault_named, purgers
from .freshness import Verdict, check
from .history import History, Phase, load_lines, now, read_line
from .markers import new_run_id
from .scenario import Scenario
from .target import Target
from .traffic import CLIENT_TIMEOUT, ClientSpec, login, run_client
from .verify import final_reads, final_views

__all__ = ["CheckPlan", "CheckResult", "CheckError", "run_check", "cpu_times"]

log_interval = 0.2  # seconds between looks at a fault while it lasts


class CheckError(Exception):
    """The check could not start (a login failed, no objects found); one line, no traceback."""


@dataclass
class CheckPlan:
    """What to run."""

    scenario: Scenario
    faults: list[str]
    seconds: float = 30.0  # the baseline phase
    phase_seconds: float = 20.0
    clients: int = 4
    seed: int = 1
    rate: float = 100.0  # requests per second, all clients together
    window: float = 2.5
    hold_share: float = 0.5  # of a phase, for faults that last (db-down, app-hang, ...)
    recovery_timeout: float = 60.0
    purge_retry: float = float(MAX_BACKOFF)  # the longest wait between a purge's retries

    def hold_seconds(self) -> float:
        return max(1.0, self.phase_seconds * self.hold_share)


@dataclass
class CheckResult:
    """Everything the report needs."""

    plan: CheckPlan
    run_id: str
    work_dir: Path
    started_at: str
    target: dict
    objects: list[dict[str, str]]
    phases: list[Phase]
    skipped: list[tuple[str, str]]
    verdict: Verdict
    history: History
    cpu: dict[str, float | None]
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    stuck: str | None = None  # the fault the stack did not recover from

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.verdict.failed or self.stuck else 0


def cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat (None elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def _busy_share(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> float | None:
    if not before or not after or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 3)


Say = Callable[[str], None]


class _Clients:
    """The client processes and the signals between them and the coordinator."""

    def __init__(self, specs: list[ClientSpec]):
        context = multiprocessing.get_context("spawn")
        self.ready = context.Queue()
        self.go = context.Event()
        self.stop = context.Event()
        self.start_time = context.Value("d", 0.0)
        self.kill_writers = context.Event()  # writer-kill: command writes SIGKILL themselves
        self.specs = specs
        self.processes = [
            context.Process(
                target=run_client,
                args=(spec, self.ready, self.go, self.stop, self.start_time, self.kill_writers),
                name=f"strata-check-client-{spec.index}",
                daemon=True,
            )
            for spec in specs
        ]

    def start(self, timeout: float = 120.0) -> list[str]:
        """Start every client and wait until each has logged in; the problems met."""
        for process in self.processes:
            process.start()
        problems = []
        deadline = time.monotonic() + timeout
        for _ in self.processes:
            try:
                index, problem = self.ready.get(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:
                problems.append(f"a client did not log in within {timeout:.0f} s")
                break
            if problem:
                problems.append(f"client {index}: {problem}")
        return problems

    def go_at(self, start: float) -> None:
        self.start_time.value = start
        self.go.set()

    def alive(self) -> int:
        return sum(p.is_alive() for p in self.processes)

    def finish(self, timeout: float) -> int:
        """Tell the clients to stop and wait (bounded); how many had to be terminated."""
        self.stop.set()
        self.go.set()  # a client still waiting to start leaves at once
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
        stuck = 0
        for process in self.processes:
            if process.is_alive():
                stuck += 1
                process.terminate()
                process.join(5)
        return stuck


def _preflight(plan: CheckPlan, target: Target, say: Say) -> list[dict[str, str]]:
    """Log in as each role once and find the objects; CheckError on any problem."""
    scenario = plan.scenario
    sessions: dict[str, Session] = {}
    anonymous = target.public(timeout=30)
    try:
        for role in dict.fromkeys([*scenario.roles(), *(s.user for s in scenario.find if s.user)]):
            session = target.public(timeout=30)
            sessions[role] = session
            problem = login(session, scenario.login, scenario.users[role][0])
            if problem:
                raise CheckError(f"{scenario.source}: {problem}")
        try:
            objects = find_objects(scenario, anonymous, sessions)
        except DiscoveryError as error:
            raise CheckError(f"{scenario.source}: {error}") from None
    finally:
        anonymous.close()
        for session in sessions.values():
            session.close()
    if len(objects) < scenario.count:
        say(f"note: found {len(objects)} objects, not {scenario.count}")
    return objects


def _writer(plan: CheckPlan, target: Target, work_dir: Path, notes: list[str]) -> Writer | None:
    """The command writer, when the scenario has command writes, tried once per command
    (``manage.py help <command>``); CheckError when it cannot run them."""
    commands = plan.scenario.commands
    if not commands:
        return None
    try:
        record = target.state.environment()
    except NoStack as error:
        raise CheckError(
            f"{plan.scenario.source}: command writes need the stack's environment.json: {error}"
        ) from None
    bus = bool(purgers(target))
    writer = Writer.for_stack(record, bus, work_dir / "commands.log", sys.executable)
    if not bus:
        notes.append(
            "no purger in state.json (no invalidation bus): command writes got "
            f"{' and '.join(WITHOUT_BUS)} too, as a writer needs them without the bus"
        )
    for name in dict.fromkeys(w.command[0] for w in commands):
        try:
            run = writer.run(["help", name], name, timeout=60)
        except OSError as error:
            raise CheckError(f"cannot run {writer.python} -m django: {error}") from None
        if run.returncode != 0:
            raise CheckError(
                f"{plan.scenario.source}: the command write's `manage.py {name}` does not run "
                f"in {writer.directory} with only the database and cache settings "
                f"({run.problem()})"
            )
    return writer


def _specs(
    plan: CheckPlan,
    target: Target,
    run_id: str,
    objects,
    work_dir: Path,
    writer: Writer | None = None,
) -> list[ClientSpec]:
    keys = plan.scenario.keys(len(objects))
    faults = len(plan.faults)
    bound = (
        plan.seconds
        + faults * (plan.phase_seconds + plan.recovery_timeout + plan.hold_seconds())
        + 120.0
    )
    return [
        ClientSpec(
            index=i,
            clients=plan.clients,
            seed=plan.seed,
            run_id=run_id,
            host=target.host,
            port=target.port,
            scenario=plan.scenario,
            objects=objects,
            rate=plan.rate / plan.clients,
            out=work_dir / f"client-{i}.jsonl",
            max_seconds=bound,
            keys=[k for j, k in enumerate(keys) if j % plan.clients == i],
            writer=writer,
        )
        for i in range(plan.clients)
    ]


class _Schedule:
    """The phases, run one after the other while the clients send traffic."""

    def __init__(self, plan: CheckPlan, target: Target, fctx: FaultContext, say: Say, status: Say):
        self.plan = plan
        self.target = target
        self.fctx = fctx
        self.say = say
        self.status = status
        self.phases: list[Phase] = []
        self.skipped: list[tuple[str, str]] = []
        self.applied: list[tuple[Fault, Phase]] = []
        self.cpu: dict[str, float | None] = {}
        self.stuck: str | None = None

    def _wait_until(self, t: float, watch: Callable[[], None] | None = None) -> None:
        while True:
            left = t - now()
            if left <= 0:
                return
            if watch is not None:
                with contextlib.suppress(Exception):
                    watch()
            time.sleep(min(left, log_interval))

    def _begin(self, phase: Phase) -> tuple[float, float] | None:
        if self.phases:
            self.phases[-1].end = phase.start
        self.phases.append(phase)
        return cpu_times()

    def baseline(self, start: float) -> None:
        phase = Phase("baseline", start)
        before = self._begin(phase)
        self.status(f"baseline: {self.plan.seconds:g} s of traffic, no fault")
        self._wait_until(start + self.plan.seconds)
        phase.end = now()
        self.cpu[phase.name] = _busy_share(before, cpu_times())

    def run_fault(self, name: str) -> None:
        fault = fault_named(name)
        reason = fault.unavailable(self.target) or fault.unsupported(self.plan.scenario)
        if reason:
            self.skipped.append((name, reason))
            self.say(f"{name}: skipped ({reason})")
            return
        if self.stuck:
            reason = f"the stack had not recovered from {self.stuck}"
            self.skipped.append((name, reason))
            self.say(f"{name}: skipped ({reason})")
            return
        plan = self.plan
        phase = Phase(name, now(), fault=name, excuses_purges=fault.excuses_purges)
        before = self._begin(phase)
        self.status(f"{name}: {fault.summary}")
        try:
            self.applied.append((fault, phase))
            fault.apply(self.fctx, phase)
            phase.applied = now()
        except Exception as error:  # FaultError, OSError, a cache server's answer...
            phase.notes.append(f"not applied: {error}")
            self.say(f"{name}: could not be applied: {error}")
        if phase.applied is not None:
            watch = lambda: fault.watch(self.fctx, phase)  # noqa: E731
            if fault.holds:
                self._wait_until(phase.applied + plan.hold_seconds(), watch)
                self._heal(fault, phase)
            phase.healed = now() if fault.holds else phase.applied
            self.status(f"{name}: healed, waiting for the stack to recover")
            if not self._recover(fault, phase):
                self.stuck = name
                phase.notes.append(f"not recovered {plan.recovery_timeout:g} s after healing")
                self.say(
                    f"[red]{name}: the stack had not recovered {plan.recovery_timeout:g} s after healing[/]"
                )
            self._wait_until(phase.start + plan.phase_seconds, watch)
        else:
            self._wait_until(phase.start + plan.phase_seconds)
        phase.end = now()
        self.cpu[phase.name] = _busy_share(before, cpu_times())
        took = phase.recovery_seconds
        if took is not None:
            out = (
                ""
                if phase.taken_out is None or phase.applied is None
                else f"; taken out of the pool {phase.taken_out - phase.applied:.1f} s after the fault"
            )
            self.say(f"{name}: recovered {took:.1f} s after healing{out}")

    def _heal(self, fault: Fault, phase: Phase) -> None:
        try:
            fault.heal(self.fctx, phase)
        except Exception as error:
            phase.notes.append(f"healing failed: {error}")
            self.say(f"[red]{fault.name}: healing failed: {error}[/]")

    def _recover(self, fault: Fault, phase: Phase) -> bool:
        healed = phase.healed
        if healed is None:  # run_fault sets it (healed, or a fault that needs no healing) first
            raise RuntimeError(f"{fault.name}: waiting for recovery before the fault was healed")
        deadline = healed + self.plan.recovery_timeout
        probe_failures = 0
        while now() < deadline:
            with contextlib.suppress(Exception):
                fault.watch(self.fctx, phase)
            try:
                whole = fault.recovered(self.fctx, phase)
            except Exception:
                whole = False
            if whole:
                answer = self.target.probe(self.plan.scenario.probe)
                if answer is not None and answer.status == 200:
                    phase.recovered = now()
                    phase.details["probe_failures"] = probe_failures
                    return True
                probe_failures += 1
            time.sleep(log_interval)
        return False

    def heal_all(self) -> None:
        for fault, phase in self.applied:
            self._heal(fault, phase)
            if phase.applied is not None and phase.healed is None:
                phase.healed = now()  # interrupted during the hold
                phase.notes.append("healed early: the run was interrupted")


def run_check(
    plan: CheckPlan, target: Target, say: Say | None = None, status: Say | None = None
) -> CheckResult:
    """Run ``plan`` against ``target`` and judge it."""
    say = say or (lambda text: None)
    status = status or (lambda text: None)
    run_id = new_run_id()
    work_dir = target.run_dir / "check" / run_id
    work_dir.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    status("logging in and finding the objects to write")
    objects = _preflight(plan, target, say)
    notes: list[str] = []
    writer = _writer(plan, target, work_dir, notes)
    held = (
        sorted(p.name for p in (target.run_dir / "hold").glob("*"))
        if (target.run_dir / "hold").is_dir()
        else []
    )
    if held:
        notes.append(f"hold files already present before the run: {', '.join(held)}")
    clients = _Clients(_specs(plan, target, run_id, objects, work_dir, writer))
    fctx = FaultContext(
        target,
        random.Random(f"{plan.seed}:faults"),
        work_dir,
        run_id,
        say,
        kill_writers=clients.kill_writers,
        scenario=plan.scenario,
    )
    schedule = _Schedule(plan, target, fctx, say, status)
    interrupted = False
    try:
        status(f"starting {plan.clients} clients")
        problems = clients.start()
        if problems:
            raise CheckError(problems[0])
        start = now() + 0.5
        clients.go_at(start)
        schedule.baseline(start)
        for name in plan.faults:
            schedule.run_fault(name)
    except KeyboardInterrupt:
        interrupted = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not lose the report
        say("interrupted: healing the faults, then reporting what was seen")
    finally:
        schedule.heal_all()
        status("stopping the clients")
        terminated = clients.finish(CLIENT_TIMEOUT + 10)
        if terminated:
            notes.append(f"{terminated} client(s) did not stop in time and were terminated")
    phases = schedule.phases

    final = Phase("final", now())
    if phases:
        phases[-1].end = final.start
    phases.append(final)
    status("final reads through the accelerator, and the written keys with every cache off")
    recovered = _wait_for_stack(
        target, plan.scenario.probe, 10.0 if interrupted else plan.recovery_timeout
    )
    if not recovered:
        notes.append("the stack did not answer the probe after the run: final reads may fail")
    time.sleep(plan.window + 0.5)  # the final reads must come after every purge window
    reads = final_reads(target, plan.scenario, objects, run_id)
    views = final_views(target, plan.scenario, objects, run_id)
    final.end = now()
    with open(work_dir / "final.jsonl", "w", encoding="utf-8") as fh:
        for read in reads:
            fh.write(read_line(read) + "\n")

    history = History()
    history.add_lines(load_lines(sorted(work_dir.glob("client-*.jsonl"))))
    history.reads += reads
    notes += history.notes
    keeps = {w.name: w.keeps for w in plan.scenario.writes}
    verdict = check(history, phases, plan.window, keeps, views, plan.purge_retry)
    return CheckResult(
        plan=plan,
        run_id=run_id,
        work_dir=work_dir,
        started_at=started_at,
        target=target.describe(),
        objects=objects,
        phases=phases,
        skipped=schedule.skipped,
        verdict=verdict,
        history=history,
        cpu=schedule.cpu,
        notes=notes,
        interrupted=interrupted,
        stuck=schedule.stuck,
    )


def _wait_for_stack(target: Target, path: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        answer = target.probe(path)
        if answer is not None and answer.status == 200:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
