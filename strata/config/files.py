"""One file that ``strata config`` renders (shared by the renderer and the monitoring files)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OutputFile"]


@dataclass(frozen=True)
class OutputFile:
    """One rendered file: where it goes on its host, its text, and what it is for."""

    path: str  # absolute, on the host: /etc/haproxy/haproxy.cfg
    content: str
    what: str
    mode: int = 0o644
