"""Where the figures of a running stack come from, one reader per kind of source.

* an app server's ``/-/metrics`` (Prometheus text, the contract names ``strata_*``) and
  ``/-/timing/`` (JSON: every process's per-view histograms, purges, the bus), both
  asked over HTTP/1.0: uWSGI's ``http11-socket`` keeps an HTTP/1.1 connection open;
* Varnish's counters, with ``varnishstat -n WORK_DIR -j`` (``-t 0``: fail at once when
  no varnishd runs there, instead of retrying for 5 s);
* HAProxy's ``show stat`` on its admin socket (CSV: requests, statuses, servers UP);
* each program's health: its pid alive, and a probe that sends no request a tier would
  count: PING for Redis, ``version`` for Memcached, a TCP connect for the others (whose
  own figures, read above, say whether they answer).

Every reader raises :class:`SourceDown` (one line: why) when its source does not answer;
it never waits longer than ``timeout``.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
from pathlib import Path

from ..stack.haproxy import admin_command
from ..stack.probes import line_probe
from ..stack.process import pid_alive
from .samples import Samples, parse

__all__ = [
    "SourceDown",
    "VARNISH_COUNTERS",
    "http10_get",
    "read_metrics",
    "read_timing",
    "read_varnish",
    "read_haproxy",
    "parse_show_stat",
    "probe_program",
]

VARNISH_COUNTERS = (
    "client_req",
    "cache_hit",
    "cache_hit_grace",
    "cache_miss",
    "cache_hitpass",
    "s_pass",
    "n_object",
    "n_purges",
    "n_obj_purged",
)
"""The ``MAIN.*`` counters that ``strata top`` reads from each Varnish."""


class SourceDown(Exception):
    """A source did not answer (or not with figures); ``str(error)`` says why."""


def http10_get(host: str, port: int, path: str, timeout: float) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.0 GET (the server closes the connection after)."""
    connection = _HTTP10(host, port, timeout=timeout)
    try:
        # http.client sends Host only with HTTP/1.1; without it Django sees the machine's
        # name (uWSGI's SERVER_NAME), which ALLOWED_HOSTS refuses.
        connection.request("GET", path, headers={"Host": f"{host}:{port}", "Accept": "*/*"})
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as error:
        raise SourceDown(f"http://{host}:{port}{path}: {error or type(error).__name__}") from None
    finally:
        connection.close()


class _HTTP10(http.client.HTTPConnection):
    _http_vsn = 10
    _http_vsn_str = "HTTP/1.0"


def read_metrics(host: str, port: int, timeout: float = 1.0) -> Samples:
    """The samples of the app server's ``/-/metrics``."""
    status, body = http10_get(host, port, "/-/metrics", timeout)
    if status != 200:
        raise SourceDown(f"http://{host}:{port}/-/metrics answered {status}")
    try:
        return parse(body.decode("utf-8", "replace"))
    except ValueError as error:
        raise SourceDown(f"http://{host}:{port}/-/metrics: {error}") from None


def read_timing(host: str, port: int, timeout: float = 1.0) -> dict:
    """The JSON of the app server's ``/-/timing/`` (every live process's figures)."""
    status, body = http10_get(host, port, "/-/timing/", timeout)
    if status != 200:
        raise SourceDown(f"http://{host}:{port}/-/timing/ answered {status}")
    try:
        data = json.loads(body)
    except ValueError:
        raise SourceDown(f"http://{host}:{port}/-/timing/ is not JSON") from None
    if not isinstance(data, dict):
        raise SourceDown(f"http://{host}:{port}/-/timing/ is not a JSON object")
    return data


def read_varnish(work_dir: str | Path, timeout: float = 2.0) -> dict[str, int]:
    """The :data:`VARNISH_COUNTERS` of the varnishd whose ``-n`` is ``work_dir``."""
    command = ["varnishstat", "-n", str(work_dir), "-t", "0", "-1", "-j"]
    command += [arg for name in VARNISH_COUNTERS for arg in ("-f", f"MAIN.{name}")]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SourceDown(f"varnishstat -n {work_dir}: {error}") from None
    try:
        counters = json.loads(out.stdout).get("counters", {})
    except (ValueError, AttributeError):
        why = (out.stderr.strip().splitlines() or ["no counters"])[-1]
        raise SourceDown(f"varnishstat -n {work_dir}: {why}") from None
    return {
        name: int(counters[f"MAIN.{name}"].get("value", 0))
        for name in VARNISH_COUNTERS
        if f"MAIN.{name}" in counters
    }


def parse_show_stat(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """``(proxy, server) → {column: value}`` from HAProxy's ``show stat`` CSV (servers
    are ``FRONTEND`` and ``BACKEND`` for a proxy's own totals); ValueError without a
    header line."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("#"):
        raise ValueError("no header line")
    header = lines[0].lstrip("# ").split(",")
    if "pxname" not in header or "svname" not in header:
        raise ValueError("the header names no pxname/svname")
    rows = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        rows[(row.get("pxname", ""), row.get("svname", ""))] = row
    return rows


def read_haproxy(admin_socket: str | Path, timeout: float = 1.0) -> dict:
    """HAProxy's ``show stat``, parsed (:func:`parse_show_stat`), from its admin socket."""
    try:
        text = admin_command(Path(admin_socket), "show stat", timeout)
        return parse_show_stat(text)
    except (OSError, ValueError) as error:
        raise SourceDown(f"{admin_socket} show stat: {error}") from None


def probe_program(program: dict, timeout: float = 1.0) -> tuple[bool, str]:
    """Whether one program of ``state.json`` is healthy, and what was seen: its pid is
    alive and its probe answers."""
    pid = program.get("pid")
    if pid and not pid_alive(int(pid)):
        return False, f"pid {pid} is gone"
    host, port = program.get("host") or "127.0.0.1", int(program.get("port") or 0)
    if program.get("netns") or not port:
        # In a network namespace (strata up --hosts) or no port (the purger): the pid says.
        return (bool(pid), "alive" if pid else "no pid")
    implementation = str(program.get("implementation", ""))
    try:
        if implementation == "Redis":
            ok = line_probe(host, port, b"PING\r\n", b"+PONG", timeout)
        elif implementation == "Memcached":
            ok = line_probe(host, port, b"version\r\n", b"VERSION", timeout)
        else:  # the others' own reads (metrics, varnishstat, show stat) say more
            with socket.create_connection((host, port), timeout=timeout):
                ok = True
    except OSError as error:
        return False, str(error)
    return ok, "ok" if ok else f"no answer on {host}:{port}"
