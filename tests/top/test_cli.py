"""``strata top`` without a stack: one clear line, status 1, no traceback."""

from __future__ import annotations

import os
import socket

from click.testing import CliRunner

from strata.cli.main import cli
from strata.stack.runstate import RunState


def test_top_without_a_running_stack_says_so_in_one_line_and_exits_1(tmp_path):
    result = CliRunner().invoke(cli, ["top", "--run-dir", str(tmp_path), "--once"])
    assert result.exit_code == 1
    assert "no stack is running for" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_top_refuses_an_interval_below_a_fifth_of_a_second(tmp_path):
    result = CliRunner().invoke(cli, ["top", "--run-dir", str(tmp_path), "--interval", "0"])
    assert result.exit_code == 2
    assert "--interval" in result.output


def _dead_stack(run_dir, port: int) -> None:
    """A ``state.json`` whose ``strata up`` is this test (alive) and whose programs are
    all gone: nothing listens, no varnishd, no HAProxy socket."""
    programs = {
        "app1": {
            "layer": "app server",
            "implementation": "uWSGI",
            "host": "127.0.0.1",
            "port": port,
            "pid": None,
        },
        "varnish1": {
            "layer": "accelerator",
            "implementation": "Varnish",
            "host": "127.0.0.1",
            "port": port,
            "pid": None,
            "work_dir": str(run_dir / "varnish1"),
        },
        "haproxy": {
            "layer": "load balancer",
            "implementation": "HAProxy",
            "host": "127.0.0.1",
            "port": port,
            "pid": None,
        },
        "redis": {
            "layer": "cache",
            "implementation": "Redis",
            "host": "127.0.0.1",
            "port": port,
            "pid": None,
        },
    }
    RunState(
        run_dir=run_dir, pid=os.getpid(), url=f"http://127.0.0.1:{port}/", programs=programs
    ).write()


def test_sources_that_do_not_answer_show_as_down_and_the_view_still_exits_0(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _dead_stack(tmp_path, port)
    result = CliRunner().invoke(
        cli, ["top", "--run-dir", str(tmp_path), "--once", "--interval", "0.2"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("app1", "varnish1", "haproxy"):
        row = next(line for line in lines if f" {name} " in line and "down" in line)
        assert row
    assert "Could not get hold of varnishd" in result.output
    assert "redis down" in result.output
