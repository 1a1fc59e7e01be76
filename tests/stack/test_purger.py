"""The invalidation bus's purger as ``strata up`` runs it: a program of the stack with
Redis, shown with its pid, restarted when it dies; none with Memcached."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from strata.stack.config import StackConfig, demo_project
from strata.stack.plan import StackPlan
from strata.stack.probes import http_get
from strata.stack.purger import bus_status
from strata.stack.runstate import RunState
from strata.stack.supervisor import Supervisor
from tests.helpers import demo_stack, make_run_dir, remove_run_dir, require_real_stack

pytestmark = pytest.mark.stack

TOUCH_AN_ARTICLE = (
    "from newsroom.models import Article; a = Article.objects.order_by('pk').first(); "
    "a.title = a.title.rstrip('!') + '!'; a.save()"
)


@pytest.fixture(scope="module")
def redis_stack():
    """The demo on Redis: one app server, one worker (the purger is what is tested)."""
    with demo_stack(app_servers=1, workers=1) as stack:
        yield stack


def _wait_for(condition, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    return condition()


def _bus(stack) -> dict:
    figures = bus_status(RunState.running(stack.run_dir).environment())
    assert figures is not None and "error" not in figures, figures
    return figures


def test_a_redis_stack_runs_one_purger_after_the_accelerators_with_its_pid_shown(redis_stack):
    names = [p.name for p in redis_stack.programs]
    assert names.index("purger") == names.index("varnish1") + 1
    assert names.index("purger") < names.index("haproxy")
    purger = redis_stack.purgers[0]
    assert purger.running()
    assert purger.log_path == redis_stack.run_dir / "logs" / "purger.log"
    # The app servers' environment and directory: the same settings, cache, accelerators.
    app = redis_stack.app_servers[0]
    assert purger.cwd() == app.cwd()
    assert purger.env()["CACHE_URL"] == app.env()["CACHE_URL"]
    assert purger.env()["STRATA_ACCELERATORS"] == app.env()["STRATA_ACCELERATORS"]
    assert purger.argv()[-3:] == ["-m", "django", "strata_purger"]

    state = RunState.running(redis_stack.run_dir)
    row = next(r for r in state.rows if r["layer"] == "purger")
    assert row["pid"] == purger.pid and row["implementation"] == "strata_purger"
    assert state.programs["purger"]["pid"] == purger.pid


def test_the_bus_figures_name_the_purger_that_holds_the_lease(redis_stack):
    purger = redis_stack.purgers[0]
    figures = _bus(redis_stack)
    assert figures["lease"]["holder"].endswith(f":{purger.pid}")
    varnish = redis_stack.accelerators[0]
    assert f"{varnish.host}:{varnish.port}" in figures["nodes"]


def test_the_timing_page_shows_the_same_bus_figures(redis_stack):
    app = redis_stack.app_servers[0]
    answer = http_get(app.host, app.port, "/-/timing/", timeout=30)
    assert answer.status == 200, answer.body[:300]
    bus = json.loads(answer.body)["bus"]
    assert bus["lease"]["holder"].endswith(f":{redis_stack.purgers[0].pid}")
    assert set(bus) >= {"length", "head_age", "nodes", "stats", "purgers"}
    html = http_get(app.host, app.port, "/-/timing/?format=html", timeout=30).body.decode()
    assert "Invalidation bus:" in html and "holds the lease" in html


def test_a_killed_purger_is_restarted_and_delivers_what_was_written_meanwhile(redis_stack):
    purger = redis_stack.purgers[0]
    old_pid = purger.pid
    restarted = []
    supervisor = Supervisor(redis_stack, on_back=lambda program: restarted.append(program.name))

    os.kill(old_pid, signal.SIGKILL)
    assert _wait_for(lambda: not purger.running(), 5)
    redis_stack.manage(["shell", "-c", TOUCH_AN_ARTICLE])  # written while no purger runs
    supervisor.check()

    assert restarted == ["purger"]
    assert purger.running() and purger.pid != old_pid
    state = RunState.running(redis_stack.run_dir)
    assert state.programs["purger"]["pid"] == purger.pid  # state.json written again

    # The new purger takes the lease once the dead one's runs out, and catches up.
    def caught_up() -> dict | None:
        figures = _bus(redis_stack)
        lease, nodes = figures["lease"], figures["nodes"].values()
        holds = lease is not None and lease["holder"].endswith(f":{purger.pid}")
        return figures if holds and all(node["behind"] == 0 for node in nodes) else None

    assert _wait_for(caught_up, 20), _bus(redis_stack)


def test_a_memcached_or_embedded_stack_plans_no_purger():
    require_real_stack()
    run_dir = make_run_dir()
    try:
        for options in ({"cache": "memcached"}, {"embedded": True}):
            plan = StackPlan(StackConfig(run_dir=run_dir, project=demo_project(), **options))
            assert plan.purgers == []
            assert all(p.layer != "purger" for p in plan.programs)
        memcached = StackPlan(
            StackConfig(run_dir=run_dir, project=demo_project(), cache="memcached")
        )
        note = next(layer for layer in memcached.embedded if layer.layer == "purger")
        assert "needs Redis" in note.reason
    finally:
        remove_run_dir(run_dir)
