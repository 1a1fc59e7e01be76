"""The exporters: each program's counters over HTTP, in Prometheus's text format, on a
port of its own (``docs/monitoring.md``).

Debian packages three of them, and each is one more program of the stack:
``prometheus-varnish-exporter`` (it runs ``varnishstat -n`` on the node's work
directory at every scrape), ``prometheus-redis-exporter`` and
``prometheus-postgres-exporter`` (its connection string in ``DATA_SOURCE_NAME``, the
environment, never on its command line). Debian 12 packages no memcached exporter:
:mod:`strata.stack.memcached_exporter` is Strata's own, a small collector over
memcached's ``stats``. HAProxy exports its own counters (a frontend of its
configuration) and the app servers serve theirs at ``/-/metrics``: neither needs one.

An exporter is for looking at the stack, never part of serving it: a missing binary,
or one that does not start, is a note in the status table, not a failed ``strata up``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import __version__
from .probes import http_get
from .program import Program, StatusRow, find_program, program_version

__all__ = [
    "Exporter",
    "VarnishExporter",
    "RedisExporter",
    "PostgresExporter",
    "MemcachedExporter",
    "METRICS_PATH",
]

METRICS_PATH = "/metrics"


class Exporter(Program):
    """An exporter of one program's counters (its ``target``), on its own port."""

    layer = "metrics"
    package = ""  # the Debian package that provides it
    ready_timeout = 10.0
    stop_timeout = 5.0

    def __init__(self, name: str, run_dir: Path, host: str, port: int, binary: str, target):
        super().__init__(name, run_dir, host, port)
        self.binary = binary
        self.target = target
        self.netns = target.netns  # beside its program, on its host

    @property
    def url(self) -> str:
        """Where Prometheus scrapes it."""
        return f"http://{self.host}:{self.port}{METRICS_PATH}"

    def healthy(self) -> bool:
        try:
            return http_get(self.host, self.port, METRICS_PATH, timeout=2).status == 200
        except OSError:
            return False

    def version(self) -> str:
        return program_version([self.binary, "--version"], _go_version)

    def status_row(self) -> StatusRow:
        row = super().status_row()
        row.note = f"counters of {self.target.name} at {METRICS_PATH}"
        return row


def _go_version(text: str) -> str:
    """The version out of a Prometheus exporter's version banner ('... version 1.2.3 ...')."""
    words = text.replace(",", " ").split()
    for i, word in enumerate(words):
        if word == "version" and i + 1 < len(words):
            return words[i + 1].lstrip("v")
        if word.startswith("v") and word[1:2].isdigit():
            return word[1:]
    return "?"


class VarnishExporter(Exporter):
    """``prometheus-varnish-exporter -n <work dir>``: varnishstat's counters of one node."""

    implementation = "prometheus-varnish-exporter"
    package = "prometheus-varnish-exporter"

    def argv(self) -> list[str]:
        return [
            self.binary,
            "-n",
            str(self.target.work_dir),
            "-web.listen-address",
            f"{self.host}:{self.port}",
            "-raw",
        ]

    def version(self) -> str:
        # "prometheus_varnish_exporter 1.6.1 (...)"; Debian's build says "dev"
        return program_version([self.binary, "-version"], lambda s: s.split()[1])


class RedisExporter(Exporter):
    """``prometheus-redis-exporter``: INFO's counters (hits, misses, memory, clients)."""

    implementation = "prometheus-redis-exporter"
    package = "prometheus-redis-exporter"

    def argv(self) -> list[str]:
        return [
            self.binary,
            "-redis.addr",
            f"redis://{self.target.host}:{self.target.port}",
            "-web.listen-address",
            f"{self.host}:{self.port}",
        ]

    def version(self) -> str:
        # a log line: '... msg="Redis Metrics Exporter 1.45.0-2+b4    build date: ...'
        return program_version(
            [self.binary, "-version"], lambda s: s.split("Exporter ")[1].split()[0]
        )


class PostgresExporter(Exporter):
    """``prometheus-postgres-exporter``: pg_stat_database and friends. The connection
    string (which may hold a password) goes in the environment, not on the command line,
    where every user of the machine could read it."""

    implementation = "prometheus-postgres-exporter"
    package = "prometheus-postgres-exporter"

    def argv(self) -> list[str]:
        return [
            self.binary,
            f"--web.listen-address={self.host}:{self.port}",
            # pg_settings is some 300 series of configuration: not what a dashboard shows.
            "--disable-settings-metrics",
            "--log.level=warn",
        ]

    def env(self) -> dict[str, str]:
        url = self.target.url.replace("postgres://", "postgresql://", 1)
        return {**os.environ, "DATA_SOURCE_NAME": f"{url}?sslmode=disable"}


class MemcachedExporter(Exporter):
    """Strata's own collector over memcached's ``stats`` (no exporter in Debian 12):
    ``python -m strata.stack.memcached_exporter``."""

    implementation = "strata memcached exporter"
    package = ""

    def argv(self) -> list[str]:
        return [
            self.binary,
            "-m",
            "strata.stack.memcached_exporter",
            "--memcached",
            f"{self.target.host}:{self.target.port}",
            "--listen",
            f"{self.host}:{self.port}",
        ]

    def version(self) -> str:
        return __version__


def plan_exporters(
    accelerators, caches, database, port_of, host_of
) -> tuple[list[Exporter], list[str]]:
    """The exporters for a stack's programs, and a note for each that cannot run.

    ``port_of(role, index)`` gives an exporter's port, ``host_of(program)`` the address
    it listens on (its target's host: where Prometheus finds the rest of that host's
    counters).
    """
    exporters: list[Exporter] = []
    notes: list[str] = []

    def binary(package: str, layer: str) -> str | None:
        found = find_program(package)
        if found is None:
            notes.append(
                f"no metrics for {layer}: {package} is not installed (scripts/bootstrap.sh "
                "installs it); the layer runs without"
            )
        return found

    if accelerators and (varnish := binary("prometheus-varnish-exporter", "Varnish")):
        for i, node in enumerate(accelerators):
            exporters.append(
                VarnishExporter(
                    f"{node.name}-exporter",
                    node.run_dir,
                    host_of(node),
                    port_of("varnish_exporter", i),
                    varnish,
                    node,
                )
            )
    redis = [c for c in caches if c.implementation == "Redis"]
    if redis and (found := binary("prometheus-redis-exporter", "Redis")):
        for node in redis:
            exporters.append(
                RedisExporter(
                    f"{node.name}-exporter",
                    node.run_dir,
                    host_of(node),
                    port_of("redis_exporter", 0),
                    found,
                    node,
                )
            )
    for node in (c for c in caches if c.implementation == "Memcached"):
        exporters.append(
            MemcachedExporter(
                f"{node.name}-exporter",
                node.run_dir,
                host_of(node),
                port_of("memcached_exporter", 0),
                sys.executable,
                node,
            )
        )
    if database is not None and (found := binary("prometheus-postgres-exporter", "PostgreSQL")):
        exporters.append(
            PostgresExporter(
                f"{database.name}-exporter",
                database.run_dir,
                host_of(database),
                port_of("postgres_exporter", 0),
                found,
                database,
            )
        )
    return exporters, notes
