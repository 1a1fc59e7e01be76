"""Memcached: the cache server, when a site prefers it to Redis."""

from __future__ import annotations

import os
from pathlib import Path

from .probes import line_probe
from .program import Program, program_version

__all__ = ["Memcached"]


class Memcached(Program):
    """A private memcached instance (TCP only)."""

    layer = "cache"
    implementation = "Memcached"

    def __init__(self, name, run_dir: Path, host, port, binary: str, memory_mb: int = 256):
        super().__init__(name, run_dir, host, port)
        self.binary = binary
        self.memory_mb = memory_mb

    @property
    def url(self) -> str:
        """The ``CACHE_URL`` for Django."""
        return f"memcached://{self.host}:{self.port}"

    def version(self) -> str:
        return program_version([self.binary, "-V"], lambda s: s.split()[1])

    def argv(self) -> list[str]:
        # memcached has no config file; as root it needs an explicit -u.
        argv = [
            self.binary,
            "-l",
            self.host,
            "-p",
            str(self.port),
            "-U",
            "0",
            "-m",
            str(self.memory_mb),
        ]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        return argv

    def healthy(self) -> bool:
        return line_probe(self.host, self.port, b"version\r\n", b"VERSION")
