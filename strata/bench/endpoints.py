"""Where a benchmark sends its requests: the stack's public address, its app-server pool,
the Host its pages are cached under, and the secret that switches caches off.

A stack started by ``strata up`` describes itself in its run directory: ``state.json``
(the public URL and the status rows; the load balancer's row names the pool port) and
``purge-secret``. Another stack is addressed by a full URL, with the pool at Strata's
usual offset (public port + 90) unless told otherwise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..stack.process import pid_alive

__all__ = ["Endpoints", "NoStack", "from_run_dir", "from_url", "POOL_OFFSET"]

POOL_OFFSET = 90
"""The app-server pool's port relative to the public port in ``strata up``'s layout."""


class NoStack(Exception):
    """No running stack could be found where the user pointed; the message says what to do."""


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
    """The stack that ``strata up`` (or :class:`strata.stack.stack.Stack`) runs in ``run_dir``."""
    run_dir = Path(run_dir).resolve()
    state_path = run_dir / "state.json"
    try:
        state = json.loads(state_path.read_text())
        pid = int(state["pid"])
        url = urlsplit(state["url"])
    except FileNotFoundError:
        raise NoStack(f"no stack is running for {run_dir}") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NoStack(f"cannot read {state_path}: {error}") from None
    if not pid_alive(pid):
        raise NoStack(f"no stack is running for {run_dir} (its strata up, pid {pid}, is gone)")
    rows = state.get("rows") or []
    host, port = url.hostname or "127.0.0.1", url.port or 80
    pool: tuple[str, int] | None = None
    notes = []
    for row in rows:
        address = str(row.get("address", ""))
        if row.get("layer") == "load balancer":
            found = re.search(r"\bpool (\d+)\b", address)
            if found:
                pool = (host, int(found.group(1)))
    if pool is None:
        servers = [
            _split_address(str(row.get("address", "")))
            for row in rows
            if row.get("layer") == "app server"
        ]
        servers = [s for s in servers if s]
        if servers:
            pool = servers[0]
            if len(servers) > 1:
                notes.append(
                    f"no app-server pool behind the accelerator: tiers past Varnish load one "
                    f"app server ({pool[0]}:{pool[1]}) of {len(servers)}"
                )
        else:
            pool = (host, port)
    has_accelerator = any(row.get("layer") == "accelerator" for row in rows)
    if secret is None:
        try:
            secret = (run_dir / "purge-secret").read_text().strip()
        except OSError:
            secret = ""
    return Endpoints(
        host=host,
        port=port,
        pool_host=pool[0],
        pool_port=pool[1],
        secret=secret,
        source=f"strata up in {run_dir} (pid {pid})",
        has_accelerator=has_accelerator,
        rows=rows,
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
        address = (parts.hostname, port + POOL_OFFSET)
    return Endpoints(
        host=parts.hostname,
        port=port,
        pool_host=address[0],
        pool_port=address[1],
        secret=secret or "",
        source=f"{parts.hostname}:{port} (given by URL)",
    )
