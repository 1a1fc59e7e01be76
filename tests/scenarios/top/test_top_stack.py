"""``strata top`` against a real demo stack (PostgreSQL, Redis, two app servers, Varnish,
the purger, HAProxy): one reading with ``--once``, and the live view until Ctrl-C.

One stack for the module; ``strata top`` runs as the command a person types, in a
process of its own.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from strata.stack.probes import http_get
from tests.helpers import demo_stack

TOP = [sys.executable, "-m", "strata.cli", "top"]


@pytest.fixture(scope="module")
def stack():
    with demo_stack() as running:
        yield running


def _traffic(stack, stop: threading.Event) -> None:
    """Anonymous reads of the home page through the load balancer until ``stop``."""
    host, port = stack.url.split("//")[1].rstrip("/").split(":")
    while not stop.is_set():
        with contextlib.suppress(OSError):
            http_get(host, int(port), "/", timeout=5)
        stop.wait(0.02)


@pytest.fixture
def traffic(stack):
    stop = threading.Event()
    thread = threading.Thread(target=_traffic, args=(stack, stop), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(10)


def test_once_prints_every_tier_with_the_accelerators_hit_ratio_and_exits_0(stack, traffic):
    done = subprocess.run(
        [*TOP, "--run-dir", str(stack.run_dir), "--once", "--interval", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for tier in ("load balancer", "accelerator", "app server"):
        assert tier in out
    for program in ("haproxy", "varnish1", "app1", "app2", "postgres", "redis", "purger"):
        assert program in out
    # The home page, read again and again through Varnish: hits, so a ratio.
    varnish_line = next(line for line in out.splitlines() if "varnish1" in line and "up" in line)
    assert "%" in varnish_line
    assert "down" not in out
    assert f"varnishstat -n {stack.run_dir}" in out


def test_the_live_view_quits_cleanly_on_ctrl_c(stack, traffic, tmp_path):
    picture = tmp_path / "top.svg"
    top = subprocess.Popen(
        [*TOP, "--run-dir", str(stack.run_dir), "--svg", str(picture)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)  # a few refreshes
        top.send_signal(signal.SIGINT)
        out, err = top.communicate(timeout=30)
    finally:
        if top.poll() is None:
            top.kill()
    assert top.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "varnish1" in out  # the last screen stays
    assert picture.read_text().startswith("<svg")
