"""A real Prometheus, pointed at the demo stack's scrape configuration, reads every
layer's metrics, and every panel of the Grafana dashboard finds data (issue 19).

The stack is ``strata up``'s (:func:`tests.helpers.demo_stack`); the scrape configuration
is rendered from its ``state.json`` by the renderer that ``strata config`` uses, with a
one-second interval; Debian's ``prometheus`` runs privately on 127.0.0.1 with its own
storage in a temporary directory. Evaluating each panel's PromQL through
``/api/v1/query`` proves that the dashboard's queries name metrics that exist.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import pytest

from strata.config.dashboard import TIERS, promql
from strata.stack.ports import free_port
from strata.stack.program import find_program
from strata.stack.prometheus import render_scrape_config, targets_from_state
from tests.helpers import demo_stack, make_run_dir, poll, remove_run_dir, skip_locally_fail_in_ci
from tests.scenarios.bus.helpers import articles, committed_edit, through_lb

LAYERS = {"haproxy", "varnish", "app", "redis", "postgres"}


@pytest.fixture(scope="module")
def stack():
    with demo_stack() as the_stack:
        yield the_stack


@pytest.fixture(scope="module")
def prometheus(stack):
    """The URL of a private Prometheus scraping the stack every second."""
    binary = find_program("prometheus")
    if binary is None:
        skip_locally_fail_in_ci("not installed: prometheus (scripts/bootstrap.sh installs it)")
    state = json.loads((stack.run_dir / "state.json").read_text())
    work = make_run_dir()
    config = work / "prometheus.yml"
    config.write_text(
        render_scrape_config(targets_from_state(state["programs"]), scrape_interval="1s")
    )
    port = free_port()
    with open(work / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        ready = poll(lambda: process.poll() is None and _status(f"{url}/-/ready") == 200, 30)
        assert ready, (work / "prometheus.log").read_text()[-2000:]
        yield url
    finally:
        process.terminate()
        process.wait(20)
        remove_run_dir(work)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return 0


def _api(prometheus: str, path: str, **params: str) -> dict:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{prometheus}/api/v1/{path}{query}", timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]


def _targets(prometheus: str) -> list[dict]:
    return _api(prometheus, "targets", state="active")["activeTargets"]


def test_prometheus_reads_every_layer_of_the_demo_stack(stack, prometheus):
    def all_up():
        targets = _targets(prometheus)
        return targets and all(t["health"] == "up" for t in targets) and targets

    targets = poll(all_up, 30) or _targets(prometheus)
    down = [(t["scrapeUrl"], t["lastError"]) for t in targets if t["health"] != "up"]
    assert not down, down
    assert {t["labels"]["job"] for t in targets} == LAYERS
    # Each app server directly, at its own /-/metrics; never through the load balancer.
    apps = sorted(t["scrapeUrl"] for t in targets if t["labels"]["job"] == "app")
    assert apps == [f"http://{a.host}:{a.port}/-/metrics" for a in stack.app_servers]


def test_every_panel_of_the_dashboard_finds_data(stack, prometheus):
    client = through_lb(stack)
    pages = articles(stack, count=5)
    for _ in range(3):
        for path in ["/", *(path for _, path in pages)]:
            assert client.get(path).status == 200
    # A write: invalidations, purges, the bus.
    committed_edit(stack, pages[0][0], f"monitoring-{uuid.uuid4().hex[:8]}")

    queries = [
        (tier.title, panel.title, query.expr)
        for tier in TIERS
        for panel in tier.panels
        for query in panel.queries
    ]

    def empty() -> list[tuple[str, str, str]]:
        return [
            (tier, panel, expr)
            for tier, panel, expr in queries
            if not _api(prometheus, "query", query=promql(expr, "30s"))["result"]
        ]

    # Counters become series at their first scrape, and a rate needs two samples.
    deadline = time.monotonic() + 40
    missing = empty()
    while missing and time.monotonic() < deadline:
        time.sleep(2)
        missing = empty()
    assert not missing, "no data:\n" + "\n".join(f"{t} / {p}: {e}" for t, p, e in missing)
