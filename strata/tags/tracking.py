"""The push connection of a near cache: Redis tells this process of every write to Strata's keys.

One connection per process and cache, opened by redis-py (authentication, database, TLS as
the cache's own connections), then switched to client-side caching in broadcast mode:
``CLIENT TRACKING ON REDIRECT <itself> BCAST PREFIX ...`` and ``SUBSCRIBE
__redis__:invalidate``. From then on it only receives: invalidation messages (the keys
written, or nothing for a flush) and the answers to its pings. Those few shapes of RESP2
are read here with a parser of a dozen lines, so that a reader can ask "has anything
arrived?" with one ``poll`` of the socket and no exception on the way.

Readers drain it before every lookup (:meth:`PushConnection.drain`); a thread waits on it
between requests, pings Redis and reconnects after a failure. The thread is a convenience,
not a requirement: without it (an app server that runs no threads) the readers ping, and
a failed connection simply leaves the copies off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .nearcache import NearCache

__all__ = ["PushConnection", "INVALIDATE_CHANNEL"]

log = logging.getLogger("strata.tags")

INVALIDATE_CHANNEL = b"__redis__:invalidate"
_PING = b"*1\r\n$4\r\nPING\r\n"
_INCOMPLETE = object()


class PushConnection:
    """Feeds ``near`` the invalidations of keys under ``prefixes``, from one connection.

    ``connect`` returns a connected redis-py ``Connection`` speaking RESP2. ``silence`` is
    how long the copies stay usable without a word from Redis.
    """

    def __init__(
        self,
        near: NearCache,
        connect: Callable[[], Any],
        prefixes: list[str],
        silence: float,
    ) -> None:
        self.near = near
        self.connect = connect
        self.prefixes = prefixes
        self.silence = silence
        self.ping_every = silence / 4
        self.unsupported: str | None = None
        """Why this Redis cannot push (an old server, a denied command), or None."""
        near.drain = self.drain
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._marks: set[str] = set()  # marker keys written by barrier(), awaited
        self._heard_marks: set[str] = set()
        self._reset()
        _connections.add(self)

    def _reset(self) -> None:
        self._connection: Any = None
        self._sock: Any = None
        self._poll: Any = None
        self._wait: Any = None
        self._buffer = bytearray()
        self._heard = 0.0
        self._pinged = 0.0
        self._usable = False
        self._thread: threading.Thread | None = None

    # -- readers ------------------------------------------------------------------------

    def drain(self) -> bool:
        """Apply every invalidation delivered so far; True when the copies may be used."""
        if self._thread is None:
            self._start()
        if self._sock is None:
            return False
        with self._lock:
            return self._drain_locked(time.monotonic())

    def _drain_locked(self, now: float) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            while self._poll.poll(0) or (hasattr(sock, "pending") and sock.pending()):
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    break
                if not data:
                    raise ConnectionError("Redis closed the connection")
                self._buffer += data
                self._heard = now
                self._apply()
            if now - self._pinged >= self.ping_every:
                self._pinged = now
                sock.sendall(_PING)
        except (OSError, ConnectionError, ValueError) as exc:
            self._lost(exc)
            return False
        if now - self._heard > self.silence:
            if self._usable:
                log.warning("strata: no word from Redis for %.1f s: near cache off", self.silence)
                self._usable = False
                self.near.drop_all()
            return False
        if not self._usable:
            self.near.drop_all()  # anything filled before the silence is refused too
            self._usable = True
        return True

    def _apply(self) -> None:
        while True:
            message, used = _parse(self._buffer, 0)
            if message is _INCOMPLETE:
                return
            del self._buffer[:used]
            if isinstance(message, Exception):
                raise ValueError(f"Redis refused: {message}")
            if (
                isinstance(message, list)
                and len(message) == 3
                and message[0] == b"message"
                and message[1] == INVALIDATE_CHANNEL
            ):
                keys = message[2]
                names = None if keys is None else [k.decode() for k in keys]
                self.near.invalidate(names)
                if names and self._marks:
                    self._heard_marks.update(self._marks.intersection(names))

    def barrier(self, mark: str, write: Callable[[str], Any], timeout: float = 2.0) -> bool:
        """Write the key ``mark`` (under a tracked prefix) with ``write`` and wait until its
        invalidation arrives: every write Redis made before it is then applied here.

        Redis writes a change's invalidation in the same turn of its event loop as the
        reply to the writer, but not always before it (a flush's, for one). A process
        that must see its own ``cache.clear()`` at once (a test, a benchmark) waits here.
        Returns False when the copies are off or the mark did not come back in time.
        """
        with self._lock:
            self._marks.add(mark)
        try:
            write(mark)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not self.drain():
                    return False
                if mark in self._heard_marks:
                    return True
                time.sleep(0.0005)
            return False
        finally:
            with self._lock:
                self._marks.discard(mark)
                self._heard_marks.discard(mark)

    # -- the connection -----------------------------------------------------------------

    def _open(self) -> None:
        connection = self.connect()
        try:
            connection.send_command("CLIENT", "ID")
            client_id = connection.read_response()
            connection.send_command("CLIENT", "SETNAME", f"strata-near-{os.getpid()}")
            connection.read_response()
            prefixes = [word for prefix in self.prefixes for word in ("PREFIX", prefix)]
            connection.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", *prefixes
            )
            connection.read_response()
        except Exception as exc:
            connection.disconnect()
            if "ERR" in str(exc) or "NOPERM" in str(exc) or "unknown" in str(exc).lower():
                self.unsupported = str(exc)
            raise
        sock = connection._sock
        sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$20\r\n" + INVALIDATE_CHANNEL + b"\r\n")
        sock.setblocking(False)
        # Two poll objects: one may not be polled by two threads at once, and the thread
        # waits on its own without the lock while readers drain.
        poll, wait = select.poll(), select.poll()
        poll.register(sock, select.POLLIN)
        wait.register(sock, select.POLLIN)
        with self._lock:
            self._connection = connection  # keeps the socket open
            self._sock, self._poll, self._wait = sock, poll, wait
            self._buffer = bytearray()
            self._heard = self._pinged = time.monotonic()
            self.near.drop_all()

    def _lost(self, exc: BaseException, *, stopping: bool = False) -> None:
        """The connection failed: no copy is used or made until another is open."""
        if not stopping:
            log.warning("strata: the near cache's push connection failed (%s): copies dropped", exc)
        connection, self._connection, self._sock = self._connection, None, None
        self._usable = False
        self.near.drop_all()
        if connection is not None:
            connection.disconnect()

    # -- the thread ---------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="strata-near-cache", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pause = 0.1
        while not self._stopped.is_set() and self.unsupported is None:
            if self._sock is None:
                try:
                    self._open()
                    pause = 0.1
                except Exception as exc:
                    if self.unsupported is not None:
                        log.warning(
                            "strata: Redis cannot push invalidations (%s): near cache off", exc
                        )
                        return
                    self._stopped.wait(pause)
                    pause = min(pause * 2, 2.0)
                continue
            with contextlib.suppress(OSError, ValueError):
                self._wait.poll(self.ping_every * 1000)
            with self._lock:
                self._drain_locked(time.monotonic())

    def stop(self) -> None:
        """Stop the thread and close the connection (tests, and a store that is replaced)."""
        self._stopped.set()
        with self._lock:
            if self._sock is not None:
                self._lost(ConnectionError("stopped"), stopping=True)


_connections: weakref.WeakSet[PushConnection] = weakref.WeakSet()


def _after_fork() -> None:
    # The child shares the parent's socket: it must neither read it (the parent's
    # invalidations) nor shut it down. It forgets it, drops its copies, and opens its own.
    # (redis-py closes a connection made by another process without shutting it down.)
    for connection in list(_connections):
        connection._reset()
        connection._lock = threading.Lock()
        connection.near.after_fork()


os.register_at_fork(after_in_child=_after_fork)


def _parse(buffer: bytearray, at: int) -> tuple[Any, int]:
    """One RESP2 value from ``buffer[at:]``: ``(value, end)``, or ``(_INCOMPLETE, at)``."""
    end = buffer.find(b"\r\n", at)
    if end < 0:
        return _INCOMPLETE, at
    kind, line = buffer[at : at + 1], bytes(buffer[at + 1 : end])
    at = end + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, at
        items = []
        for _ in range(count):
            item, at = _parse(buffer, at)
            if item is _INCOMPLETE:
                return _INCOMPLETE, at
            items.append(item)
        return items, at
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, at
        if len(buffer) < at + size + 2:
            return _INCOMPLETE, at
        return bytes(buffer[at : at + size]), at + size + 2
    if kind == b":":
        return int(line), at
    if kind == b"+":
        return line, at
    if kind == b"-":
        return Exception(line.decode(errors="replace")), at
    raise ValueError(f"unexpected RESP type {kind!r}")
