"""What a running stack leaves in its run directory, read and written in one place.

``strata up`` takes ``strata-up.pid`` (the lock: one ``strata up`` per run directory),
writes ``state.json`` once every layer answers (what runs where: the public URL, each
program's host, port and pid, the status rows) and ``environment.json`` (mode 0600, it
holds the purge secret: what a process of the site needs to reach the stack). Every
command that looks at a running stack (``strata status``, ``down``, ``manage``, ``env``,
``bench``, ``check``) reads them through :class:`RunState`, and gets :class:`NoStack`,
with a one-line reason, when there is nothing to look at.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import StackError
from .process import pid_alive

__all__ = [
    "ENVIRONMENT_FILE",
    "LOCK_FILE",
    "STATE_FILE",
    "PURGE_SECRET_FILE",
    "NoStack",
    "RunState",
    "clear_state",
    "hold_path",
    "lock_holder",
    "lock_pid",
    "purge_secret",
    "read_purge_secret",
    "read_environment",
    "release_lock",
    "take_lock",
    "write_environment",
]

STATE_FILE = "state.json"
ENVIRONMENT_FILE = "environment.json"
LOCK_FILE = "strata-up.pid"
PURGE_SECRET_FILE = "purge-secret"


class NoStack(Exception):
    """No running stack in the run directory: none, a gone one, or one still starting
    (``starting``); ``str(error)`` says which in one line."""

    def __init__(self, message: str, starting: bool = False):
        super().__init__(message)
        self.starting = starting


@dataclass
class RunState:
    """``state.json``: what the stack of one run directory runs, and where."""

    run_dir: Path
    pid: int  # of the process that runs the stack (strata up, or a Stack in a test)
    url: str
    urls: list[str] = field(default_factory=list)
    tls_url: str | None = None
    rows: list[dict] = field(default_factory=list)  # the status table, for people
    programs: dict[str, dict] = field(default_factory=dict)  # name → layer, host, port, pid...
    network: dict | None = None
    cache_url: str = ""
    database_url: str = ""

    @classmethod
    def running(cls, run_dir: Path) -> RunState:
        """The state of the stack running in ``run_dir``; :class:`NoStack` when none runs
        (or its ``strata up`` is gone, or is still starting)."""
        run_dir = Path(run_dir).resolve()
        starting = _still_starting(run_dir)
        holder = lock_holder(run_dir)
        try:
            state = cls.recorded(run_dir)
        except NoStack:
            if holder:
                raise starting from None
            raise
        if not pid_alive(state.pid):
            if holder:  # a new strata up, over the state of one that was killed
                raise starting
            raise NoStack(
                f"no stack is running for {run_dir} (its strata up, pid {state.pid}, is gone)"
            )
        return state

    @classmethod
    def recorded(cls, run_dir: Path) -> RunState:
        """What ``state.json`` says, whether or not its process still runs."""
        run_dir = Path(run_dir).resolve()
        path = run_dir / STATE_FILE
        try:
            data = json.loads(path.read_text())
            return cls(
                run_dir=run_dir,
                pid=int(data["pid"]),
                url=str(data["url"]),
                urls=list(data.get("urls") or [data["url"]]),
                tls_url=data.get("tls_url"),
                rows=list(data.get("rows") or []),
                programs=dict(data.get("programs") or {}),
                network=data.get("network"),
                cache_url=data.get("cache_url", ""),
                database_url=data.get("database_url", ""),
            )
        except FileNotFoundError:
            raise NoStack(f"no stack is running for {run_dir}") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise NoStack(f"cannot read {path}: {error}") from None

    def write(self) -> None:
        """Write ``state.json`` at once (a reader never sees half a file)."""
        record = asdict(self)
        del record["run_dir"]
        _write_atomically(self.run_dir / STATE_FILE, json.dumps(record, indent=2))

    # -- addresses -----------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The public host (the first load balancer's, or the app server's)."""
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """The public port."""
        return urlsplit(self.url).port or 80

    def named(self, layer: str) -> list[str]:
        """Names of the programs of ``layer`` (``app server``, ``cache``, ...), in order."""
        return [name for name, p in self.programs.items() if p.get("layer") == layer]

    def addresses(self, layer: str) -> list[tuple[str, int]]:
        """``(host, port)`` of each program of ``layer``, in order."""
        return [
            (self.programs[n]["host"], int(self.programs[n]["port"])) for n in self.named(layer)
        ]

    @property
    def pool(self) -> tuple[str, int] | None:
        """The app-server pool that HAProxy serves past the accelerator, if it serves one."""
        for name in self.named("load balancer"):
            program = self.programs[name]
            if program.get("pool_port"):
                return self.host, int(program["pool_port"])
        return None

    # -- the supervisor ------------------------------------------------------------------
    @property
    def supervised(self) -> bool:
        """True when ``strata up``'s supervisor runs this stack (it restarts programs
        that die)."""
        return lock_holder(self.run_dir) == self.pid

    @property
    def secret(self) -> str:
        """The purge secret (it also switches Strata's caches off: bench mode)."""
        return read_purge_secret(self.run_dir)

    def environment(self) -> dict:
        """``environment.json``: see :func:`read_environment`."""
        return read_environment(self.run_dir)


def read_environment(run_dir: Path) -> dict:
    """What a process of the site needs to reach the stack running in ``run_dir``:
    ``directory`` (the project's), ``python`` and ``environment``."""
    run_dir = Path(run_dir).resolve()
    try:
        return json.loads((run_dir / ENVIRONMENT_FILE).read_text())
    except (OSError, ValueError):
        raise _still_starting(run_dir) from None


def write_environment(run_dir: Path, record: dict) -> None:
    """Write ``environment.json``, readable by its owner only (it holds the purge secret)."""
    path = Path(run_dir) / ENVIRONMENT_FILE
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(record, indent=2))


def purge_secret(run_dir: Path) -> str:
    """The stack's purge secret (``purge-secret``, mode 0600), made on first use: it
    stays the same over restarts, so a settings file or a script may keep it."""
    path = Path(run_dir) / PURGE_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


def read_purge_secret(run_dir: Path) -> str:
    """The purge secret of the stack in ``run_dir``; '' when it has none."""
    try:
        return (Path(run_dir) / PURGE_SECRET_FILE).read_text().strip()
    except OSError:
        return ""


def hold_path(run_dir: Path, name: str) -> Path:
    """While this file exists, the supervisor leaves program ``name`` stopped (the
    check's fault drills write it)."""
    return Path(run_dir) / "hold" / name


def clear_state(run_dir: Path) -> None:
    """Remove ``state.json`` and ``environment.json``: the stack stopped."""
    for name in (STATE_FILE, ENVIRONMENT_FILE):
        (Path(run_dir) / name).unlink(missing_ok=True)


# -- the lock ------------------------------------------------------------------------------
def lock_pid(run_dir: Path) -> int | None:
    """The pid in ``run_dir``'s lock, whether or not that ``strata up`` still runs."""
    try:
        pid = int((Path(run_dir) / LOCK_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def lock_holder(run_dir: Path) -> int | None:
    """The pid of the ``strata up`` that holds ``run_dir``'s lock, if it still runs."""
    pid = lock_pid(run_dir)
    return pid if pid and pid_alive(pid) else None


def take_lock(run_dir: Path) -> None:
    """Make this process the ``strata up`` of ``run_dir``; ``StackError`` when another
    one runs there."""
    other = lock_holder(run_dir)
    if other and other != os.getpid():
        raise StackError(
            "strata up",
            f"already running for {run_dir} (pid {other}); stop it with Ctrl-C or "
            f"`strata down --run-dir {run_dir}`",
        )
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / LOCK_FILE).write_text(f"{os.getpid()}\n")


def release_lock(run_dir: Path) -> None:
    """Remove the lock (its ``strata up`` stopped, or was found gone)."""
    (Path(run_dir) / LOCK_FILE).unlink(missing_ok=True)


def _still_starting(run_dir: Path) -> NoStack:
    return NoStack(
        f"the stack of {run_dir} is still starting; try again when `strata up` prints its URL",
        starting=True,
    )


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)
