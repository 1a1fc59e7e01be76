"""HAProxy: the load balancer (TLS termination, round robin, health checks, slowstart)."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

from .errors import StackError
from .probes import http_get
from .program import Program, program_version
from .render import write_config

__all__ = ["HAProxy"]


def admin_command(socket_path: Path, command: str, timeout: float = 2.0) -> str:
    """Run one command on the HAProxy runtime API at ``socket_path``; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def server_column(show_stat: str, backend: str, column: str) -> dict[str, str]:
    """Server name → its ``column`` (``status``, ``stot``, ...) in ``backend``, from
    ``show stat``. Raises ValueError when the answer has no header naming those columns."""
    found: dict[str, str] = {}
    lines = show_stat.splitlines()
    if not lines:
        return found
    header = lines[0].lstrip("# ").split(",")
    px, sv, wanted = header.index("pxname"), header.index("svname"), header.index(column)
    for line in lines[1:]:
        fields = line.split(",")
        if (
            len(fields) > wanted
            and fields[px] == backend
            and fields[sv] not in ("FRONTEND", "BACKEND")
        ):
            found[fields[sv]] = fields[wanted]
    return found


def server_states(show_stat: str, backend: str) -> dict[str, str]:
    """Server name → status (UP, DOWN, MAINT, ...) in ``backend``, from ``show stat``.

    Raises ValueError when the answer has no header naming those columns.
    """
    return server_column(show_stat, backend, "status")


class HAProxy(Program):
    """One HAProxy process: the public frontend and, optionally, the app-server pool."""

    layer = "load balancer"
    implementation = "HAProxy"
    # SIGUSR1 is HAProxy's soft stop: in-flight requests finish.
    stop_signal = signal.SIGUSR1

    def __init__(
        self,
        name,
        run_dir,
        host,
        port,
        binary: str,
        *,
        accelerators,
        app_servers,
        pool: str,
        pool_port: int,
        workers: int,
        health_path: str,
        tls_port: int | None = None,
        tls_pem: Path | None = None,
        slowstart: str = "10s",
        balance: str = "roundrobin",
        metrics_port: int | None = None,
    ):
        super().__init__(name, run_dir, host, port)
        self.binary = binary
        self.accelerators = accelerators
        self.app_servers = app_servers
        self.pool = pool
        self.pool_port = pool_port
        self.workers = workers
        self.health_path = health_path
        self.tls_port = tls_port
        self.tls_pem = tls_pem
        self.slowstart = slowstart
        self.balance = balance
        self.metrics_port = metrics_port
        self.config_path = run_dir / "config" / f"{name}.cfg"
        self.admin_socket = run_dir / name / "admin.sock"

    def version(self) -> str:
        return program_version([self.binary, "-v"], lambda s: s.split()[2])

    def ports(self) -> list[int]:
        ports = [self.port]
        if self.pool == "haproxy":
            ports.append(self.pool_port)
        if self.tls_port:
            ports.append(self.tls_port)
        if self.metrics_port:
            ports.append(self.metrics_port)
        return ports

    @property
    def address(self) -> str:
        text = f"{self.host}:{self.port}"
        if self.tls_port:
            text += f", https {self.tls_port}"
        if self.pool == "haproxy":
            text += f", pool {self.pool_port}"
        if self.metrics_port:
            text += f", metrics {self.metrics_port}"
        return text

    def prepare(self) -> None:
        self.admin_socket.parent.mkdir(parents=True, exist_ok=True)
        write_config(
            self.config_path,
            "haproxy.cfg.j2",
            host=self.host,
            port=self.port,
            tls=bool(self.tls_port),
            tls_port=self.tls_port,
            tls_pem=self.tls_pem,
            admin_socket=self.admin_socket,
            accelerators=self.accelerators,
            app_servers=self.app_servers,
            pool=self.pool,
            pool_port=self.pool_port,
            workers=self.workers,
            health_path=self.health_path,
            slowstart=self.slowstart,
            balance=self.balance,
            metrics_host=self.host,
            metrics_port=self.metrics_port,
        )
        check = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check.returncode != 0:
            raise StackError(
                self.name,
                f"the generated {self.config_path} is invalid: "
                + (check.stderr.strip().splitlines() or ["?"])[-1],
            )

    def argv(self) -> list[str]:
        return [self.binary, "-db", "-f", str(self.config_path)]

    def healthy(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                pass
            return "Uptime" in self.admin("show info")
        except OSError:
            return False

    def admin(self, command: str, timeout: float = 2.0) -> str:
        """Run one command on HAProxy's runtime API (the admin socket) and return its answer."""
        return admin_command(self.admin_socket, command, timeout)

    def server_states(self, backend: str) -> dict[str, str]:
        """Server name → status (UP, DOWN, MAINT, ...) as HAProxy sees it now."""
        return server_states(self.admin("show stat"), backend)

    def metrics(self) -> str:
        """HAProxy's own Prometheus exporter's answer (its metrics frontend)."""
        if not self.metrics_port:
            raise OSError("this HAProxy has no metrics frontend")
        return http_get(self.host, self.metrics_port, "/metrics").body.decode()

    def get(self, path: str = "/", headers=None):
        """A request through the public frontend."""
        return http_get(self.host, self.port, path, headers=headers)
