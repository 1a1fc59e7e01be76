"""Real Redis servers under a real Sentinel, on free loopback ports, for the failover tests.

Two ``redis-server`` processes (a primary and its replica) and one ``redis-server
--sentinel`` watching them with a quorum of 1, so that ``SENTINEL FAILOVER`` promotes
the replica at once. Every process is a direct child, stopped by its pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from strata.stack.ports import free_port
from strata.stack.process import tail
from strata.stack.program import find_program
from tests.helpers import skip_locally_fail_in_ci

LOOPBACK = "127.0.0.1"
SERVICE = "strata-test"


def require_redis() -> str:
    """The redis-server binary; skip locally, fail in CI, when it is missing."""
    binary = find_program("redis-server")
    if binary is None:
        skip_locally_fail_in_ci("not installed: redis-server")
    return binary


def poll(condition: Callable[[], object], timeout: float = 15.0, what: str = "") -> object:
    """``condition()``'s first true value; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except redis.RedisError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


class Server:
    """One ``redis-server`` (or Sentinel) process."""

    def __init__(self, name: str, run_dir: Path, port: int, argv: list[str]):
        self.name, self.port = name, port
        self.log = run_dir / f"{name}.log"
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=run_dir
        )
        self.client = redis.Redis(LOOPBACK, port, socket_timeout=2, decode_responses=True)
        self.raw = redis.Redis(LOOPBACK, port, socket_timeout=2)  # values as stored (pickles)
        poll(self.client.ping, 10, f"{name} answering on {port}")

    def info(self, section: str) -> dict:
        return self.client.info(section)

    def role(self) -> str:
        return self.info("replication")["role"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.client.close()
        self.raw.close()

    def describe(self) -> str:
        return f"{self.name} (pid {self.process.pid}, port {self.port}):\n{tail(self.log)}"


class Topology:
    """A primary, one replica and a Sentinel; :meth:`failover` swaps the two servers."""

    def __init__(self, binary: str):
        self.run_dir = Path(tempfile.mkdtemp(prefix="strata-sentinel-", dir="/tmp"))
        self.servers: list[Server] = []
        taken: set[int] = set()
        try:
            a, b, s = free_port(taken), free_port(taken), free_port(taken)
            self.dead_port = free_port(taken)  # nothing listens there
            self.a = self._redis(binary, "redis-a", a)
            self.b = self._redis(binary, "redis-b", b, "--replicaof", LOOPBACK, str(a))
            poll(lambda: self.b.info("replication").get("master_link_status") == "up", 10)
            conf = self.run_dir / "sentinel.conf"
            conf.write_text(
                f"port {s}\nbind {LOOPBACK}\ndaemonize no\ndir {self.run_dir}\n"
                f"logfile {self.run_dir / 'sentinel.log'}\n"
                f"sentinel monitor {SERVICE} {LOOPBACK} {a} 1\n"
                # Every failover here is asked for (SENTINEL FAILOVER); one the Sentinel
                # started itself, because a server busy with a full resync or a restart
                # missed its pings for a second, would swap the roles under a test.
                f"sentinel down-after-milliseconds {SERVICE} 5000\n"
                f"sentinel failover-timeout {SERVICE} 3000\n"
            )
            self.sentinel = Server("sentinel", self.run_dir, s, [binary, str(conf), "--sentinel"])
            self.servers.append(self.sentinel)
            self.wait_for_sentinel()
        except BaseException:
            self.stop()
            raise

    def _redis(self, binary: str, name: str, port: int, *extra: str) -> Server:
        server = Server(name, self.run_dir, port, self._argv(binary, name, port, *extra))
        self.servers.append(server)
        return server

    def _restart(self, server: Server, *extra: str) -> None:
        binary = server.process.args[0]
        fresh = Server(
            server.name,
            self.run_dir,
            server.port,
            self._argv(binary, server.name, server.port, *extra),
        )
        server.stop()  # only closes its clients: the process is gone
        server.__dict__.update(fresh.__dict__)

    def _argv(self, binary: str, name: str, port: int, *extra: str) -> list[str]:
        argv = [binary, "--port", str(port), "--bind", LOOPBACK, "--dir", str(self.run_dir)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        # A new replica syncs at once, not after the default 5 s wait for more replicas.
        argv += ["--repl-diskless-sync-delay", "0"]
        return argv + ["--logfile", str(self.run_dir / f"{name}.log"), *extra]

    @property
    def location(self) -> str:
        return f"sentinel://{LOOPBACK}:{self.sentinel.port}"

    def primary(self) -> Server:
        """The server the Sentinel names as the primary, as redis-py asks (SENTINEL MASTERS:
        during a failover it names the old primary a little longer than
        get-master-addr-by-name does)."""
        port = int(self.sentinel.client.sentinel_masters()[SERVICE]["port"])
        return self.a if port == self.a.port else self.b

    def replica(self) -> Server:
        return self.b if self.primary() is self.a else self.a

    def cut_replication(self) -> None:
        """Point the replica at a dead port: it keeps its data and gets no more writes.

        Everything written so far reaches it first: only later writes are lost.
        """
        self.catch_up()
        self.replica().client.replicaof(LOOPBACK, self.dead_port)

    def catch_up(self) -> None:
        """Until the replica has everything the primary wrote so far (if it replicates it)."""
        primary, replica = self.primary(), self.replica()
        if replica.info("replication").get("master_port") != primary.port:
            return  # cut off on purpose
        written = primary.info("replication")["master_repl_offset"]
        poll(
            lambda: replica.info("replication")["slave_repl_offset"] >= written,
            15,
            "the replica to catch up",
        )

    def wait_for_sentinel(self) -> None:
        """Until the Sentinel knows the replica well enough to promote it."""

        def ready() -> bool:
            replicas = self.sentinel.client.sentinel_slaves(SERVICE)
            return any(
                r["port"] == self.replica().port
                and "disconnected" not in r["flags"]
                and r["master-link-status"] == "ok"
                for r in replicas
            )

        poll(ready, 15, "the Sentinel to know the replica")

    def failover(self, *, crash: bool = True) -> Server:
        """The Sentinel promotes the replica; return it, the new primary.

        ``crash``: the old primary is killed first (SIGKILL: whatever it had not
        replicated is lost), and comes back as a replica of the new one, as its
        configuration management would start it. ``SENTINEL FAILOVER`` promotes at once
        instead of after ``down-after-milliseconds``. Without ``crash`` the old primary
        stays up, and a primary, until :meth:`reattach`.
        """
        # A Sentinel refuses a failover while its last one is still reconfiguring replicas
        # (up to failover-timeout): "INPROG Failover already in progress".
        self.wait_for_failover_end()
        self.catch_up()  # what it lost is what a test cut off, not replication lag
        old, new = self.primary(), self.replica()
        if crash:
            old.process.kill()
            old.process.wait(5)
        try:
            self.sentinel.client.sentinel_failover(SERVICE)
        except redis.ResponseError as error:
            # The Sentinel saw the killed primary down (down-after-milliseconds) and began
            # the same failover itself: one replica, so it promotes the same server.
            if "INPROG" not in str(error):
                raise
        poll(lambda: self.primary() is new, 15, f"Sentinel to name {new.name}")
        poll(lambda: new.role() == "master", 15, f"{new.name} promoted")
        if crash:
            self._restart(old, "--replicaof", LOOPBACK, str(new.port))
            self.reattach(old)
        return new

    def wait_for_failover_end(self) -> None:
        """Until the Sentinel has no failover of the service under way."""
        poll(
            lambda: (
                "failover_in_progress"
                not in str(self.sentinel.client.sentinel_masters()[SERVICE]["flags"])
            ),
            15,
            "the Sentinel's failover to end",
        )

    def reattach(self, old: Server) -> None:
        """Make ``old`` a replica of the primary (what the Sentinel does seconds later)."""
        new = self.primary()
        if old.info("replication").get("master_port") != new.port:
            old.client.replicaof(LOOPBACK, new.port)
        poll(
            lambda: old.info("replication").get("master_link_status") == "up",
            15,
            f"{old.name} replicating from {new.name}",
        )
        self.wait_for_sentinel()
        self.wait_for_failover_end()

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        if os.environ.get("STRATA_KEEP_RUN_DIR"):
            print(f"kept the Sentinel topology's directory {self.run_dir}")
            return
        shutil.rmtree(self.run_dir, ignore_errors=True)
