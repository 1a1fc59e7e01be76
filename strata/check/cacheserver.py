"""Just enough of the Redis and Memcached protocols to empty the version store.

No client library: the check must run wherever ``strata`` is installed, and it needs
four commands (``PING``, ``SCAN``, ``DEL``, ``DBSIZE``; memcached's ``flush_all``).
"""

from __future__ import annotations

import socket
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "Redis",
    "CacheServerError",
    "memcached_flush_all",
    "version_key_pattern",
    "redis_address",
    "memcached_version",
]


class CacheServerError(Exception):
    """The cache server answered with an error, or the connection broke."""


class Redis:
    """One connection to a Redis server speaking RESP."""

    def __init__(self, host: str, port: int, db: int = 0, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        if db:
            self.command("SELECT", str(db))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Redis:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def command(self, *args: str | bytes):
        """Send one command and return its reply (bytes, int, list or None)."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise CacheServerError("the connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise CacheServerError("the connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise CacheServerError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exactly(size)
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise CacheServerError(f"unexpected reply {line[:40]!r}")

    def scan_delete(self, pattern: str, batch: int = 1000) -> int:
        """Delete every key matching ``pattern`` (SCAN, then DEL in batches); how many went."""
        deleted = 0
        cursor = b"0"
        while True:
            cursor, keys = self.command("SCAN", cursor, "MATCH", pattern, "COUNT", str(batch))
            if keys:
                deleted += self.command("DEL", *keys)
            if cursor == b"0":
                return deleted

    def count(self, pattern: str, batch: int = 1000) -> int:
        """How many keys match ``pattern`` (a SCAN: never blocks the server)."""
        total = 0
        cursor = b"0"
        while True:
            cursor, keys = self.command("SCAN", cursor, "MATCH", pattern, "COUNT", str(batch))
            total += len(keys)
            if cursor == b"0":
                return total


def redis_address(cache_url: str) -> tuple[str, int, int]:
    """Host, port and database number of a ``redis://host:port/db`` URL."""
    parts = urlsplit(cache_url)
    db = parts.path.strip("/")
    return parts.hostname or "127.0.0.1", parts.port or 6379, int(db) if db.isdigit() else 0


def version_key_pattern(cache_url: str, version_prefix: str) -> str:
    """The Redis keys of Strata's tag versions, as Django's cache names them.

    Django's default ``KEY_FUNCTION`` makes ``<KEY_PREFIX>:<VERSION>:<key>``; Strata
    names a version ``<VERSION_PREFIX><tag>``; ``strata.env`` takes ``KEY_PREFIX`` from
    the cache URL's ``key_prefix`` parameter (empty by default).
    """
    prefix = dict(parse_qsl(urlsplit(cache_url).query)).get("key_prefix", "")
    escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix + ":")
    return f"{escaped}*:{version_prefix}*"


def memcached_flush_all(host: str, port: int, timeout: float = 5.0) -> None:
    """Memcached's ``flush_all``: every item goes (memcached cannot list its keys)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"flush_all\r\n")
        answer = sock.recv(64)
    if not answer.startswith(b"OK"):
        raise CacheServerError(f"memcached answered {answer[:40]!r} to flush_all")


def memcached_version(host: str, port: int, timeout: float = 2.0) -> str:
    """Memcached's ``version`` answer (raises when it does not answer)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"version\r\n")
        answer = sock.recv(64)
    if not answer.startswith(b"VERSION"):
        raise CacheServerError(f"memcached answered {answer[:40]!r} to version")
    return answer.decode().split()[1]
