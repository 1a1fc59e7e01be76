"""Where a benchmark sends its requests: the stack's public address, its app-server pool,
the Host its pages are cached under, and the secret that switches caches off.

A stack started by ``strata up`` describes itself in its run directory
(:class:`strata.stack.runstate.RunState`: the public URL, each program's address, the
pool's port, the purge secret). Another stack is addressed by a full URL, with the pool
at Strata's usual offset (public port + 90) unless told otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..stack.config import OFFSETS
from ..stack.runstate import NoStack, RunState

__all__ = ["Endpoints", "from_run_dir", "from_url"]


@dataclass
class Endpoints:
    """The addresses of one stack, as a benchmark needs them."""

    host: str
    port: int
    pool_host: str
    pool_port: int
    secret: str
    source: str
    has_accelerator: bool = True
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def public_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def page_host(self) -> str:
        """The Host that the accelerator forwards (lower case, no port): the page-cache key's."""
        return self.host.lower()

    def as_dict(self) -> dict:
        return {
            "public": f"{self.host}:{self.port}",
            "pool": f"{self.pool_host}:{self.pool_port}",
            "source": self.source,
            "accelerator": self.has_accelerator,
            "secret": "given" if self.secret else "none",
            "layers": self.rows,
        }


def _split_address(text: str) -> tuple[str, int] | None:
    match = re.match(r"^\s*\[?([^\]\s]+?)\]?:(\d+)\b", text)
    return (match.group(1), int(match.group(2))) if match else None


def from_run_dir(run_dir: Path, secret: str | None = None) -> Endpoints:
    """The stack that ``strata up`` (or :class:`strata.stack.stack.Stack`) runs in
    ``run_dir``; :class:`NoStack` when none runs there."""
    state = RunState.running(run_dir)
    notes = []
    pool = state.pool
    if pool is None:
        servers = state.addresses("app server")
        if servers:
            pool = servers[0]
            if len(servers) > 1:
                notes.append(
                    f"no app-server pool behind the accelerator: tiers past Varnish load one "
                    f"app server ({pool[0]}:{pool[1]}) of {len(servers)}"
                )
        else:
            pool = (state.host, state.port)
    return Endpoints(
        host=state.host,
        port=state.port,
        pool_host=pool[0],
        pool_port=pool[1],
        secret=state.secret if secret is None else secret,
        source=f"strata up in {state.run_dir} (pid {state.pid})",
        has_accelerator=bool(state.named("accelerator")),
        rows=state.rows,
        notes=notes,
    )


def from_url(url: str, pool: str | None = None, secret: str | None = None) -> Endpoints:
    """A stack known only by its public URL; the pool at ``pool`` (``host:port``) or port + 90."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise NoStack(f"{url} is not an http:// URL (https is not benchmarked; use the http port)")
    port = parts.port or 80
    if pool:
        address = _split_address(pool)
        if address is None:
            raise NoStack(f"--pool {pool} is not HOST:PORT")
    else:
        address = (parts.hostname, port + OFFSETS["pool"])
    return Endpoints(
        host=parts.hostname,
        port=port,
        pool_host=address[0],
        pool_port=address[1],
        secret=secret or "",
        source=f"{parts.hostname}:{port} (given by URL)",
    )
