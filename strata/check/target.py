"""The stack under check, as ``strata up`` describes it in its run directory
(:class:`strata.stack.runstate.RunState`: every program's layer, address, pid and
work_dir, the public URL, the cache URL, the purge secret), with the sessions, probes
and HAProxy look-ups that the check's traffic and faults need.

``RUN/strata-up.pid`` is the supervisor that restarts programs that die (unless
``RUN/hold/<name>`` exists); HAProxy's admin socket is ``RUN/haproxy/admin.sock``.
The state is read again whenever a fault needs current pids: the supervisor rewrites
it after each restart.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ..httpclient import Answer, Session
from ..stack.config import OFFSETS
from ..stack.haproxy import admin_command, server_states
from ..stack.runstate import NoStack, RunState, hold_path

__all__ = ["Target"]


@dataclass
class Target:
    """The addresses, programs and secrets of one running stack."""

    run_dir: Path
    host: str
    port: int
    pool_port: int
    secret: str
    state: RunState

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> Target:
        """The stack that ``strata up`` runs in ``run_dir`` (NoStack when none does)."""
        state = RunState.running(run_dir)
        pool = state.pool
        pool_port = pool[1] if pool else state.port + OFFSETS["pool"]
        return cls(state.run_dir, state.host, state.port, pool_port, state.secret, state)

    # -- state ---------------------------------------------------------------------------
    def reload(self) -> RunState:
        """Read ``state.json`` again (the supervisor rewrites it after a restart)."""
        # On failure keep the last known state: strata up may be rewriting the file.
        with contextlib.suppress(NoStack):
            self.state = RunState.running(self.run_dir)
        return self.state

    @property
    def programs(self) -> dict[str, dict]:
        """Program name → layer, implementation, host, port, pid (and work_dir)."""
        return self.state.programs

    def program(self, name: str) -> dict | None:
        """What ``state.json`` says of program ``name``; None if the stack has none."""
        return self.programs.get(name)

    def named(self, layer: str) -> list[str]:
        """Names of the programs of ``layer`` (``app server``, ``cache``, ...), in order."""
        return self.state.named(layer)

    def pid(self, name: str) -> int | None:
        """The pid of program ``name`` as last read."""
        program = self.program(name)
        pid = program.get("pid") if program else None
        return int(pid) if pid else None

    @property
    def supervised(self) -> bool:
        """True when ``strata up``'s supervisor runs (it restarts programs that die)."""
        return self.state.supervised

    def hold_path(self, name: str) -> Path:
        """While this file exists, the supervisor leaves program ``name`` stopped."""
        return hold_path(self.run_dir, name)

    # -- HTTP ----------------------------------------------------------------------------
    @property
    def bench_headers(self) -> dict[str, str]:
        """Headers that make Django render with every Strata cache off (bench mode)."""
        return {"X-Strata-Bench": "cold", "X-Strata-Bench-Secret": self.secret}

    def public(self, timeout: float = 10.0) -> Session:
        """A session with the load balancer."""
        return Session(self.host, self.port, timeout=timeout)

    def pool(self, timeout: float = 10.0) -> Session:
        """A session with the app-server pool, past the accelerator."""
        # The Host the accelerator forwards (port stripped), as Django sees it behind Varnish.
        return Session(self.host, self.pool_port, timeout=timeout, host_header=self.host)

    def probe(self, path: str, timeout: float = 5.0) -> Answer | None:
        """A request through the load balancer that reaches Django and the database: bench
        mode (caches off) when the secret is known. None when no answer came."""
        session = self.public(timeout)
        try:
            return session.get(path, headers=self.bench_headers if self.secret else None)
        except OSError:
            return None
        except Exception:  # http.client's protocol errors
            return None
        finally:
            session.close()

    # -- HAProxy -------------------------------------------------------------------------
    @property
    def haproxy_socket(self) -> Path:
        return self.run_dir / "haproxy" / "admin.sock"

    def haproxy_states(self, backend: str) -> dict[str, str]:
        """Server → status (UP, DOWN, MAINT, ...) in HAProxy's ``backend``; {} if unknown."""
        try:
            return server_states(admin_command(self.haproxy_socket, "show stat"), backend)
        except (OSError, ValueError):
            return {}

    def describe(self) -> dict:
        """For the report: where the stack runs and what serves each layer."""
        return {
            "run_dir": str(self.run_dir),
            "strata_up_pid": self.state.pid,
            "url": self.state.url,
            "pool": f"{self.host}:{self.pool_port}",
            "supervised": self.supervised,
            "programs": {
                name: {k: p.get(k) for k in ("layer", "implementation", "port", "pid")}
                for name, p in self.programs.items()
            },
            "cache_url": self.state.cache_url,
        }
