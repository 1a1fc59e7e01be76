"""The fault drills: what each does to the stack, how it is healed, when it has recovered.

Every drill signals only processes that ``state.json`` names, by pid, and heals what it
did itself (a hold file removed, SIGCONT, the original VCL back) in :meth:`Fault.heal`,
which is idempotent: the coordinator calls it in a ``finally``, after Ctrl-C or an error
too. Restarting a program that died is ``strata up``'s supervisor's job: the drills that
kill need it, and leave a hold file (``RUN/hold/<name>``) while a program must stay down.

========================  ==================================================================
``app-kill``              SIGKILL to one app server's process group (master and workers)
``app-hang``              SIGSTOP to one app server's process group, SIGCONT after the hold
``cache-restart``         SIGKILL to Redis/Memcached: the supervisor starts it again, empty
``version-flush``         only the tag versions deleted (Redis: SCAN + DEL of Strata's
                          version keys; Memcached cannot list keys: ``flush_all``)
``db-down``               PostgreSQL stopped (SIGINT, fast shutdown) for the hold, then back
``accelerator-down``      Varnish stopped (SIGTERM) for the hold, then back (empty)
``purge-fail``            Varnish answers every PURGE with 503 for the hold (a VCL switch)
``purger-kill``           SIGKILL to the invalidation bus's purger: the supervisor restarts it
``writer-kill``           for the hold, every command write SIGKILLs itself right after its
                          commit (the scenario's ``kill_after_commit`` arguments)
========================  ==================================================================

The last two need the invalidation bus (a ``purger`` program in ``state.json``): without
it a writer's purges die with the writer, and there is no purger to kill.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..httpclient import Session
from ..stack.process import pid_alive
from ..tags.versions import VERSION_PREFIX
from .cacheserver import (
    CacheServerError,
    Redis,
    memcached_flush_all,
    memcached_version,
    redis_address,
    version_key_pattern,
)
from .history import Phase, now
from .scenario import Scenario
from .target import Target
from .vcl import Varnishadm, VarnishadmError, refuse_purges

__all__ = [
    "Fault",
    "FaultContext",
    "FAULTS",
    "fault_named",
    "UnknownFault",
    "FaultError",
    "purgers",
    "NO_BUS",
]


class UnknownFault(Exception):
    """A fault name that is not in :data:`FAULTS`."""


class FaultError(Exception):
    """A drill could not be applied (the process was gone, varnishadm failed, ...)."""


@dataclass
class FaultContext:
    """What a drill may use."""

    target: Target
    rng: random.Random
    work_dir: Path  # where a drill may write files (RUN/check/<run id>)
    run_id: str
    say: Callable[[str], None] = lambda message: None
    # Set while command writes must SIGKILL themselves after their commit (writer-kill):
    # a multiprocessing Event that the client processes look at before each such write.
    kill_writers: Any = None
    scenario: Scenario | None = None


class Fault:
    """One drill. ``holds``: the fault lasts for a hold and is healed at its end; else it
    is instantaneous and the stack heals itself (the supervisor restarts, caches refill)."""

    name = ""
    summary = ""
    holds = False
    excuses_purges = False
    needs_supervisor = False

    def unavailable(self, target: Target) -> str | None:
        """Why this drill cannot run on ``target`` (None: it can)."""
        if self.needs_supervisor and not target.supervised:
            return "needs strata up's supervisor to restart what it stops (run the stack with strata up)"
        return None

    def unsupported(self, scenario: Scenario) -> str | None:
        """Why this drill cannot run with ``scenario`` (None: it can)."""
        return None

    def apply(self, ctx: FaultContext, phase: Phase) -> None:
        raise NotImplementedError

    def heal(self, ctx: FaultContext, phase: Phase) -> None:
        """Undo what :meth:`apply` did (idempotent; nothing for instantaneous faults)."""

    def watch(self, ctx: FaultContext, phase: Phase) -> None:
        """Called a few times a second while the fault lasts and until it has recovered."""

    def recovered(self, ctx: FaultContext, phase: Phase) -> bool:
        """True once the stack is whole again (the coordinator also probes a page)."""
        return True


# -- helpers --------------------------------------------------------------------------------


def _alive_pid(target: Target, name: str) -> int:
    target.reload()
    pid = target.pid(name)
    if not pid or not pid_alive(pid):
        raise FaultError(f"{name} is not running (state.json pid {pid})")
    return pid


def _restarted(ctx: FaultContext, phase: Phase, name: str) -> bool:
    """True once ``name`` runs again under a new pid (the supervisor restarted it)."""
    ctx.target.reload()
    pid = ctx.target.pid(name)
    if not pid or pid == phase.details.get("pid") or not pid_alive(pid):
        return False
    phase.details["new_pid"] = pid
    return True


def _server_up(ctx: FaultContext, backend: str, server: str) -> bool:
    states = ctx.target.haproxy_states(backend)
    return not states or states.get(server) == "UP"  # no admin socket: nothing to wait for


def _note_taken_out(ctx: FaultContext, phase: Phase, backend: str, server: str) -> None:
    if phase.taken_out is None:
        state = ctx.target.haproxy_states(backend).get(server, "")
        if state.startswith("DOWN") or state.startswith("MAINT"):
            phase.taken_out = now()


class _Hold:
    """A hold file that keeps the supervisor from restarting a program."""

    @staticmethod
    def put(ctx: FaultContext, phase: Phase, name: str) -> None:
        path = ctx.target.hold_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"strata check {ctx.run_id}\n")
        phase.details["hold_file"] = str(path)

    @staticmethod
    def release(phase: Phase) -> None:
        held = phase.details.get("hold_file")
        if held:
            Path(held).unlink(missing_ok=True)
            phase.details["hold_released"] = True


# -- the drills -----------------------------------------------------------------------------


class AppKill(Fault):
    name = "app-kill"
    summary = "SIGKILL one app server's process group; the supervisor restarts it"
    needs_supervisor = True

    def unavailable(self, target):
        if not target.named("app server"):
            return "no app server in state.json"
        return super().unavailable(target)

    def apply(self, ctx, phase):
        server = ctx.rng.choice(ctx.target.named("app server"))
        pid = _alive_pid(ctx.target, server)
        if os.getpgid(pid) != pid:
            raise FaultError(f"{server} (pid {pid}) does not lead its own process group")
        phase.details.update(server=server, pid=pid, signal="SIGKILL to the process group")
        os.killpg(pid, signal.SIGKILL)

    def watch(self, ctx, phase):
        _note_taken_out(ctx, phase, "app_pool", phase.details["server"])

    def recovered(self, ctx, phase):
        server = phase.details["server"]
        return _restarted(ctx, phase, server) and _server_up(ctx, "app_pool", server)


class AppHang(Fault):
    name = "app-hang"
    summary = "SIGSTOP one app server's process group for the hold, then SIGCONT"
    holds = True

    def unavailable(self, target):
        if not target.named("app server"):
            return "no app server in state.json"
        return None

    def apply(self, ctx, phase):
        server = ctx.rng.choice(ctx.target.named("app server"))
        pid = _alive_pid(ctx.target, server)
        if os.getpgid(pid) != pid:
            raise FaultError(f"{server} (pid {pid}) does not lead its own process group")
        phase.details.update(server=server, pid=pid, signal="SIGSTOP to the process group")
        phase.details["stopped"] = True
        os.killpg(pid, signal.SIGSTOP)

    def heal(self, ctx, phase):
        if phase.details.pop("stopped", False):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(phase.details["pid"], signal.SIGCONT)
            phase.details["continued"] = True

    def watch(self, ctx, phase):
        _note_taken_out(ctx, phase, "app_pool", phase.details["server"])

    def recovered(self, ctx, phase):
        return _server_up(ctx, "app_pool", phase.details["server"])


class CacheRestart(Fault):
    name = "cache-restart"
    summary = "SIGKILL Redis/Memcached; the supervisor starts it again, empty"
    needs_supervisor = True

    def unavailable(self, target):
        if not target.named("cache"):
            return "no cache server in state.json (an embedded cache)"
        return super().unavailable(target)

    def apply(self, ctx, phase):
        name = ctx.target.named("cache")[0]
        pid = _alive_pid(ctx.target, name)
        phase.details.update(program=name, pid=pid, signal="SIGKILL")
        os.kill(pid, signal.SIGKILL)

    def recovered(self, ctx, phase):
        name = phase.details["program"]
        if not _restarted(ctx, phase, name):
            return False
        program = ctx.target.program(name) or {}
        try:
            if program.get("implementation") == "Redis":
                host, port, db = redis_address(ctx.target.state.cache_url)
                with Redis(program.get("host", host), int(program.get("port", port)), db) as redis:
                    phase.details.setdefault("keys_after_restart", redis.command("DBSIZE"))
            else:
                memcached_version(program.get("host", "127.0.0.1"), int(program["port"]))
        except (OSError, CacheServerError):
            return False
        return True


class VersionFlush(Fault):
    name = "version-flush"
    summary = "delete only the tag versions (Redis SCAN+DEL; Memcached flush_all)"

    def unavailable(self, target):
        if not target.named("cache"):
            return "no cache server in state.json (an embedded cache)"
        return None

    def apply(self, ctx, phase):
        name = ctx.target.named("cache")[0]
        program = ctx.target.program(name) or {}
        host, port = program.get("host", "127.0.0.1"), int(program.get("port", 0))
        if program.get("implementation") == "Redis":
            cache_url = ctx.target.state.cache_url
            _, _, db = redis_address(cache_url)
            pattern = version_key_pattern(cache_url, VERSION_PREFIX)
            with Redis(host, port, db, timeout=30) as redis:
                deleted = redis.scan_delete(pattern)
            phase.details.update(program=name, pattern=pattern, deleted=deleted)
        else:
            memcached_flush_all(host, port)
            phase.details.update(program=name, flush_all=True)
            phase.notes.append(
                "memcached cannot list its keys: flush_all emptied the whole cache "
                "(pages, fragments and query results too), not the versions alone"
            )


class _StopAndHold(Fault):
    """Stop a program for the hold (a hold file keeps the supervisor away), then release."""

    holds = True
    needs_supervisor = True
    layer = ""
    implementation = ""
    stop_signal = signal.SIGTERM

    def victim(self, target: Target) -> str | None:
        for name in target.named(self.layer):
            if (target.program(name) or {}).get("implementation") == self.implementation:
                return name
        return None

    def unavailable(self, target):
        if self.victim(target) is None:
            return f"no {self.implementation} in state.json"
        return super().unavailable(target)

    def apply(self, ctx, phase):
        name = self.victim(ctx.target)
        pid = _alive_pid(ctx.target, name)
        phase.details.update(program=name, pid=pid, signal=signal.Signals(self.stop_signal).name)
        _Hold.put(ctx, phase, name)  # before the signal: the supervisor polls every 0.2 s
        os.kill(pid, self.stop_signal)

    def heal(self, ctx, phase):
        _Hold.release(phase)

    def recovered(self, ctx, phase):
        return _restarted(ctx, phase, phase.details["program"])


class DbDown(_StopAndHold):
    name = "db-down"
    summary = "stop PostgreSQL (SIGINT) for the hold; the supervisor starts it again"
    layer = "database"
    implementation = "PostgreSQL"
    stop_signal = signal.SIGINT


class AcceleratorDown(_StopAndHold):
    name = "accelerator-down"
    summary = "stop Varnish (SIGTERM) for the hold; the supervisor starts it again"
    layer = "accelerator"
    implementation = "Varnish"
    stop_signal = signal.SIGTERM

    def watch(self, ctx, phase):
        _note_taken_out(ctx, phase, "accelerators", phase.details["program"])

    def recovered(self, ctx, phase):
        name = phase.details["program"]
        return _restarted(ctx, phase, name) and _server_up(ctx, "accelerators", name)


class PurgeFail(Fault):
    name = "purge-fail"
    summary = "Varnish answers every PURGE with 503 for the hold (a VCL switch), then not"
    holds = True
    excuses_purges = True

    def _varnish(self, target: Target) -> tuple[str, dict] | None:
        for name in target.named("accelerator"):
            program = target.program(name) or {}
            if program.get("implementation") == "Varnish" and program.get("work_dir"):
                return name, program
        return None

    def unavailable(self, target):
        if self._varnish(target) is None:
            return "no Varnish with a work_dir in state.json"
        try:
            Varnishadm("/nonexistent")
        except VarnishadmError as error:
            return str(error)
        return None

    def apply(self, ctx, phase):
        name, program = self._varnish(ctx.target)
        admin = Varnishadm(program["work_dir"])
        try:
            original = admin.active()
            source = admin.source(original)
        except VarnishadmError as error:
            raise FaultError(str(error)) from None
        failing = f"strata_check_{ctx.run_id}_{int(now() * 1000) % 10**9}"
        path = ctx.work_dir / f"{failing}.vcl"
        path.write_text(refuse_purges(source))
        phase.details.update(program=name, original_vcl=original, failing_vcl=failing)
        try:
            admin.load(failing, path)
            admin.use(failing)
        except VarnishadmError as error:
            raise FaultError(str(error)) from None
        phase.details["switched"] = True

    def heal(self, ctx, phase):
        if not phase.details.pop("switched", False):
            return
        program = ctx.target.program(phase.details["program"]) or {}
        admin = Varnishadm(program["work_dir"])
        try:
            admin.use(phase.details["original_vcl"])
            phase.details["restored"] = True
        except VarnishadmError as error:
            phase.notes.append(f"could not switch back to {phase.details['original_vcl']}: {error}")
            phase.details["switched"] = True  # try again in the finally
            raise FaultError(str(error)) from None
        with contextlib.suppress(VarnishadmError):
            admin.discard(phase.details["failing_vcl"])

    def recovered(self, ctx, phase):
        program = ctx.target.program(phase.details["program"]) or {}
        session = Session(program.get("host", "127.0.0.1"), int(program["port"]), timeout=5)
        try:
            answer = session.request(
                "PURGE",
                "/",
                headers={"xkey-purge": "strata-check-probe", "X-Purge-Secret": ctx.target.secret},
            )
        except Exception:
            return False
        finally:
            session.close()
        # Purges that failed meanwhile fence the node (readiness) until they are delivered:
        # whole again once the load balancer sends it traffic.
        return answer.status == 200 and _server_up(ctx, "accelerators", phase.details["program"])


NO_BUS = (
    "no purger in state.json: the stack runs without the invalidation bus "
    "(it needs a Redis cache and an accelerator)"
)


def purgers(target: Target) -> list[str]:
    """The names of the stack's purgers (the ``purger`` layer of ``state.json``)."""
    return target.named("purger")


class PurgerKill(Fault):
    name = "purger-kill"
    summary = "SIGKILL the invalidation bus's purger; the supervisor restarts it"
    needs_supervisor = True

    def unavailable(self, target):
        if not purgers(target):
            return NO_BUS
        return super().unavailable(target)

    def apply(self, ctx, phase):
        name = ctx.rng.choice(purgers(ctx.target))
        pid = _alive_pid(ctx.target, name)
        phase.details.update(program=name, pid=pid, signal="SIGKILL")
        accelerators = ctx.target.named("accelerator")
        # A node out of the pool already (a backlog left by the fault before) is not ours.
        phase.details["accelerators"] = [
            a for a in accelerators if _server_up(ctx, "accelerators", a)
        ]
        phase.details["down_before"] = [
            a for a in accelerators if a not in phase.details["accelerators"]
        ]
        os.kill(pid, signal.SIGKILL)

    def watch(self, ctx, phase):
        # Without a purger the log's entries go undelivered: each accelerator's readiness
        # fences it (HAProxy takes it out) until the new purger has caught up.
        states = ctx.target.haproxy_states("accelerators")
        for name in phase.details.get("accelerators", ()):
            if states.get(name, "").startswith(("DOWN", "MAINT")):
                fenced = phase.details.setdefault("fenced", [])
                if name not in fenced:
                    fenced.append(name)
                if phase.taken_out is None:
                    phase.taken_out = now()

    def recovered(self, ctx, phase):
        if not _restarted(ctx, phase, phase.details["program"]):
            return False
        return all(
            _server_up(ctx, "accelerators", name) for name in ctx.target.named("accelerator")
        )


class WriterKill(Fault):
    name = "writer-kill"
    summary = "every command write SIGKILLs itself right after its commit, for the hold"
    holds = True

    boost = 6.0
    """How much more often the clients draw command writes while the fault holds."""

    def unavailable(self, target):
        if not purgers(target):
            return NO_BUS + "; without it a writer's purges die with the writer"
        return None

    def unsupported(self, scenario):
        if not any(w.kill_after_commit for w in scenario.commands):
            return (
                f'{scenario.source} has no write with via = "command" and kill_after_commit '
                "(the arguments that make the command SIGKILL itself after its commit)"
            )
        return None

    def apply(self, ctx, phase):
        if ctx.kill_writers is None:
            raise FaultError("no client processes to tell (the check runs no traffic)")
        phase.details["writes"] = [
            " ".join(w.command[:1] + w.kill_after_commit) for w in _commands_of(ctx)
        ]
        ctx.kill_writers.set()
        phase.details["killing"] = True

    def heal(self, ctx, phase):
        if phase.details.pop("killing", False) and ctx.kill_writers is not None:
            ctx.kill_writers.clear()
            phase.details["stopped_killing"] = True


def _commands_of(ctx: FaultContext):
    scenario = ctx.scenario
    return [w for w in scenario.commands if w.kill_after_commit] if scenario else []


FAULTS: dict[str, type[Fault]] = {
    cls.name: cls
    for cls in (
        AppKill,
        AppHang,
        CacheRestart,
        VersionFlush,
        DbDown,
        AcceleratorDown,
        PurgeFail,
        PurgerKill,
        WriterKill,
    )
}
"""Every drill, in the order of the default schedule."""


def fault_named(name: str) -> Fault:
    """A new drill of kind ``name`` (UnknownFault lists the known ones)."""
    cls = FAULTS.get(name)
    if cls is None:
        raise UnknownFault(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
    return cls()
