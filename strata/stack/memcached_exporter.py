"""A Prometheus exporter for memcached: Debian 12 packages none, so Strata has its own.

``python -m strata.stack.memcached_exporter --memcached HOST:PORT --listen HOST:PORT``
serves ``/metrics``; each scrape sends memcached one ``stats`` command and turns its
answer into metrics (prometheus_client's custom-collector API and its HTTP server). The
names follow the community exporter (prometheus/memcached_exporter), so its dashboards
and alerts work unchanged: ``memcached_up``, ``memcached_commands_total{command,status}``,
``memcached_current_bytes``, ``memcached_limit_bytes``, ``memcached_current_items``,
``memcached_items_evicted_total``, ``memcached_current_connections``, ...
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["MemcachedCollector", "read_stats", "main"]


def read_stats(host: str, port: int, timeout: float = 2.0) -> dict[str, str]:
    """memcached's ``stats``: name → value, as it answers them. Raises ``OSError``."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("memcached closed the connection")
            data += chunk
    stats = {}
    for line in data.decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats


# stats name → (metric, help), one series each
GAUGES = {
    "bytes": ("memcached_current_bytes", "Bytes currently used to store items."),
    "limit_maxbytes": ("memcached_limit_bytes", "Bytes this server may use for items."),
    "curr_items": ("memcached_current_items", "Items currently stored."),
    "curr_connections": ("memcached_current_connections", "Open client connections."),
    "uptime": ("memcached_uptime_seconds", "Seconds since the server started."),
}
COUNTERS = {
    "evictions": ("memcached_items_evicted_total", "Valid items removed to free memory."),
    "reclaimed": ("memcached_items_reclaimed_total", "Expired items whose memory was reused."),
    "total_connections": ("memcached_connections_total", "Connections opened."),
    "bytes_read": ("memcached_read_bytes_total", "Bytes read from the network."),
    "bytes_written": ("memcached_written_bytes_total", "Bytes written to the network."),
}
# (command, status) → stats name, for memcached_commands_total
COMMANDS = {
    ("get", "hit"): "get_hits",
    ("get", "miss"): "get_misses",
    ("set", "hit"): "cmd_set",
    ("delete", "hit"): "delete_hits",
    ("delete", "miss"): "delete_misses",
    ("incr", "hit"): "incr_hits",
    ("incr", "miss"): "incr_misses",
    ("touch", "hit"): "touch_hits",
    ("touch", "miss"): "touch_misses",
    ("cas", "hit"): "cas_hits",
    ("cas", "miss"): "cas_misses",
    ("cas", "badval"): "cas_badval",
}


class MemcachedCollector(Collector):
    """Collects one memcached server's ``stats`` at every scrape."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port

    def collect(self) -> Iterator[Metric]:
        """``memcached_up`` (0 when it does not answer), then its figures."""
        try:
            stats = read_stats(self.host, self.port)
        except OSError:
            stats = None
        yield GaugeMetricFamily(
            "memcached_up", "Whether the last stats command succeeded.", value=1 if stats else 0
        )
        if not stats:
            return
        for name, (metric, help_text) in GAUGES.items():
            if name in stats:
                yield GaugeMetricFamily(metric, help_text, value=float(stats[name]))
        for name, (metric, help_text) in COUNTERS.items():
            if name in stats:
                yield CounterMetricFamily(metric, help_text, value=float(stats[name]))
        commands = CounterMetricFamily(
            "memcached_commands",
            "Commands by result (set counts every set as a hit).",
            labels=["command", "status"],
        )
        for (command, status), name in COMMANDS.items():
            if name in stats:
                commands.add_metric([command, status], float(stats[name]))
        yield commands


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    """Serve ``/metrics`` for one memcached until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memcached", type=_address, default=("127.0.0.1", 11211))
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 9150))
    args = parser.parse_args(argv)
    registry = CollectorRegistry()
    registry.register(MemcachedCollector(*args.memcached))
    listen_host, listen_port = args.listen
    server, _ = start_http_server(listen_port, listen_host, registry=registry)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.shutdown()


if __name__ == "__main__":
    main()
