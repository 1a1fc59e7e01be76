"""The stack under check, as ``strata up`` describes it in its run directory.

``RUN/state.json`` names every program (``programs``: name → layer, implementation,
host, port, pid, work_dir), the public URL, ``cache_url`` and ``database_url``;
``RUN/purge-secret`` holds the secret that bench mode and purges need;
``RUN/strata-up.pid`` is the supervisor that restarts programs that die (unless
``RUN/hold/<name>`` exists); HAProxy's admin socket is ``RUN/haproxy/admin.sock``.
The state is read again whenever a fault needs current pids: the supervisor rewrites
it after each restart.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..stack.haproxy import admin_command, server_states
from ..stack.process import pid_alive
from .client import Answer, Session

__all__ = ["Target", "NoStack", "POOL_OFFSET"]

POOL_OFFSET = 90
"""The app-server pool's port relative to the public port in ``strata up``'s layout."""


class NoStack(Exception):
    """No running stack where the user pointed; the message says what to do."""


@dataclass
class Target:
    """The addresses, programs and secrets of one running stack."""

    run_dir: Path
    host: str
    port: int
    pool_port: int
    secret: str
    state: dict = field(default_factory=dict)

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> Target:
        """The stack that ``strata up`` runs in ``run_dir`` (NoStack when none does)."""
        run_dir = Path(run_dir).resolve()
        state = _read_state(run_dir)
        url = urlsplit(str(state.get("url", "")))
        if not url.hostname:
            raise NoStack(f"{run_dir / 'state.json'} names no URL")
        host, port = url.hostname, url.port or 80
        pool_port = port + POOL_OFFSET
        for row in state.get("rows") or []:
            if row.get("layer") == "load balancer":
                found = re.search(r"\bpool (\d+)\b", str(row.get("address", "")))
                if found:
                    pool_port = int(found.group(1))
        try:
            secret = (run_dir / "purge-secret").read_text().strip()
        except OSError:
            secret = ""
        return cls(run_dir, host, port, pool_port, secret, state)

    # -- state ---------------------------------------------------------------------------
    def reload(self) -> dict:
        """Read ``state.json`` again (the supervisor rewrites it after a restart)."""
        # On failure keep the last known state: strata up may be rewriting the file.
        with contextlib.suppress(NoStack):
            self.state = _read_state(self.run_dir)
        return self.state

    @property
    def programs(self) -> dict[str, dict]:
        return self.state.get("programs") or {}

    def program(self, name: str) -> dict | None:
        return self.programs.get(name)

    def named(self, layer: str) -> list[str]:
        """Names of the programs of ``layer`` (``app server``, ``cache``, ...), in order."""
        return [name for name, p in self.programs.items() if p.get("layer") == layer]

    def pid(self, name: str) -> int | None:
        program = self.program(name)
        pid = program.get("pid") if program else None
        return int(pid) if pid else None

    @property
    def supervised(self) -> bool:
        """True when ``strata up``'s supervisor runs (it restarts programs that die)."""
        try:
            pid = int((self.run_dir / "strata-up.pid").read_text().strip())
        except (OSError, ValueError):
            return False
        return pid_alive(pid) and pid == int(self.state.get("pid", 0))

    def hold_path(self, name: str) -> Path:
        """While this file exists, the supervisor leaves program ``name`` stopped."""
        return self.run_dir / "hold" / name

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
            "strata_up_pid": self.state.get("pid"),
            "url": self.state.get("url"),
            "pool": f"{self.host}:{self.pool_port}",
            "supervised": self.supervised,
            "programs": {
                name: {k: p.get(k) for k in ("layer", "implementation", "port", "pid")}
                for name, p in self.programs.items()
            },
            "cache_url": self.state.get("cache_url"),
        }


def _read_state(run_dir: Path) -> dict:
    path = run_dir / "state.json"
    try:
        state = json.loads(path.read_text())
        pid = int(state["pid"])
    except FileNotFoundError:
        raise NoStack(f"no stack is running for {run_dir}") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NoStack(f"cannot read {path}: {error}") from None
    if not pid_alive(pid):
        raise NoStack(f"no stack is running for {run_dir} (its strata up, pid {pid}, is gone)")
    return state
