"""Redis: the cache server (and the store of tag versions)."""

from __future__ import annotations

from .probes import line_probe
from .program import Program, program_version
from .render import write_config

__all__ = ["Redis"]


class Redis(Program):
    """A private Redis instance with no persistence and bounded memory."""

    layer = "cache"
    implementation = "Redis"

    def __init__(self, name, run_dir, host, port, binary: str, maxmemory: str = "256mb"):
        super().__init__(name, run_dir, host, port)
        self.binary = binary
        self.maxmemory = maxmemory
        self.data_dir = run_dir / "redis"
        self.config_path = run_dir / "config" / "redis.conf"
        self.protected_mode = True  # False: clients on other hosts, without a password

    @property
    def url(self) -> str:
        """The ``CACHE_URL`` for Django."""
        return f"redis://{self.host}:{self.port}/0"

    def version(self) -> str:
        return program_version([self.binary, "--version"], lambda s: s.split("v=")[1].split()[0])

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_config(
            self.config_path,
            "redis.conf.j2",
            host=self.host,
            port=self.port,
            data_dir=self.data_dir,
            maxmemory=self.maxmemory,
            protected_mode=self.protected_mode,
        )

    def argv(self) -> list[str]:
        return [self.binary, str(self.config_path)]

    def healthy(self) -> bool:
        return line_probe(self.host, self.port, b"PING\r\n", b"+PONG")
