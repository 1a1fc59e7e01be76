"""Two workers, one metrics page: ``PROMETHEUS_MULTIPROC_DIR`` sums the workers.

Gunicorn and uWSGI each run the demo on the test settings with two workers forked from a
master that loaded Django (Gunicorn's ``--preload``; uWSGI's default) and a fresh
``PROMETHEUS_MULTIPROC_DIR``; requests go on until both workers have answered (each names
its pid in ``X-Strata-Server``), and the page, answered by either, counts every one. The
Gunicorn hook forgets a dead worker's live gauges. About 3 s (the workers' start-up and
one flush interval).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from strata.metrics.registry import FLUSH_EVERY
from strata.stack.ports import free_port
from tests.helpers import REPO
from tests.metrics.conftest import Scrape

METRICS_VIEW = {"view": "strata.metrics.views.metrics", "outcome": "bypass"}


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def pid_of(headers: dict[str, str]) -> int:
    return int(headers["X-Strata-Server"].rpartition("pid=")[2])


def gunicorn(tmp_path, port: int) -> list[str]:
    pytest.importorskip("gunicorn")
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("from strata.metrics import gunicorn_child_exit as child_exit\n")
    # --preload, as strata up runs it: the metrics exist before the workers fork.
    return [sys.executable, "-m", "gunicorn", "-c", str(config), "-w", "2", "--preload"] + [
        "-b",
        f"127.0.0.1:{port}",
        "newsroom_site.wsgi:application",
    ]


def uwsgi(tmp_path, port: int) -> list[str]:
    pytest.importorskip("pyuwsgi")
    binary = Path(sys.executable).with_name("uwsgi")
    return [str(binary), "--master", "--processes", "2", "--enable-threads", "--need-app"] + [
        "--http-socket",
        f"127.0.0.1:{port}",
        "--module",
        "newsroom_site.wsgi:application",
        "--hook-master-start",
        "unix_signal:15 gracefully_kill_them_all",
        "--disable-logging",
    ]


def start_two_workers(tmp_path, command):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "demo")]),
        "STRATA_SERVER_NAME": "metrics-test",
    }
    env.pop("CACHE_URL", None)  # each worker's own file cache: nothing shared but the files
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        command(tmp_path, port),
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get(port, "/-/health")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "server.log").read_text()[-3000:])
                time.sleep(0.1)
        yield port, directory
    finally:
        server.terminate()
        server.wait(20)
        log.close()


@pytest.fixture
def two_workers(tmp_path):
    """Two Gunicorn workers (with Strata's ``child_exit`` hook)."""
    yield from start_two_workers(tmp_path, gunicorn)


@pytest.fixture(params=[gunicorn, uwsgi], ids=["gunicorn", "uwsgi"])
def two_workers_of_each_server(request, tmp_path):
    """Two workers of each app server Strata runs."""
    yield from start_two_workers(tmp_path, request.param)


def test_the_page_sums_the_requests_of_both_workers(two_workers_of_each_server):
    port, directory = two_workers_of_each_server
    answered: dict[int, int] = {}
    made = 0
    while len(answered) < 2 and made < 200:
        _, headers, _ = get(port, "/-/metrics")
        answered[pid_of(headers)] = answered.get(pid_of(headers), 0) + 1
        made += 1
    assert len(answered) == 2, "one worker answered every request"
    assert {f"counter_{pid}.db" for pid in answered} <= {p.name for p in directory.iterdir()}

    # Each worker moves its tally into its file at least once a second; the worker
    # that answers the scrape moves its own first. Every scrape is itself a request.
    seen = None
    for scrape in range(5):
        time.sleep(FLUSH_EVERY * 1.5)
        _, _, body = get(port, "/-/metrics")
        seen = Scrape(body.decode()).total("strata_requests_total", **METRICS_VIEW)
        if seen == made + scrape:
            break
    assert seen == made + scrape


def test_a_dead_workers_live_gauges_are_forgotten(two_workers):
    port, directory = two_workers
    _, headers, _ = get(port, "/-/metrics")  # its store exists: its circuit gauge is written
    pid = pid_of(headers)
    gauge = directory / f"gauge_livemax_{pid}.db"
    assert gauge.exists()

    os.kill(pid, signal.SIGTERM)  # the arbiter starts another worker, after child_exit

    deadline = time.monotonic() + 10
    while gauge.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not gauge.exists()
    assert (directory / f"counter_{pid}.db").exists()  # what it counted still counts
