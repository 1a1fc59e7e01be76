"""The exporters of `strata up`: planned beside their programs, optional, and Strata's
own memcached collector (Debian 12 packages none)."""

from __future__ import annotations

import socket

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from strata.stack import exporters
from strata.stack.appserver import UWSGI
from strata.stack.config import OFFSETS, StackConfig, demo_project
from strata.stack.memcached import Memcached
from strata.stack.memcached_exporter import MemcachedCollector
from strata.stack.plan import StackPlan
from strata.stack.ports import free_port
from strata.stack.program import find_program
from strata.stack.prometheus import render_scrape_config, targets_from_state
from strata.stack.stack import Stack
from tests.helpers import free_base_port, require_real_stack, skip_locally_fail_in_ci


def plan(tmp_path, **options) -> StackPlan:
    require_real_stack()
    return StackPlan(
        StackConfig(run_dir=tmp_path, project=demo_project(), port=20000, app_servers=2, **options)
    )


def test_each_program_gets_its_exporter_on_a_port_of_its_own(tmp_path):
    stack = plan(tmp_path, accelerators=2)
    assert [(e.name, e.port) for e in stack.exporters] == [
        ("varnish1-exporter", 20000 + OFFSETS["varnish_exporter"]),
        ("varnish2-exporter", 20000 + OFFSETS["varnish_exporter"] + 1),
        ("redis-exporter", 20000 + OFFSETS["redis_exporter"]),
        ("postgres-exporter", 20000 + OFFSETS["postgres_exporter"]),
    ]
    assert stack.load_balancer.metrics_port == 20000 + OFFSETS["haproxy_metrics"]
    ports = [port for program in stack.programs for port in program.ports()]
    assert len(ports) == len(set(ports))


def test_a_missing_exporter_is_a_note_not_a_failure(tmp_path, monkeypatch):
    real = exporters.find_program
    monkeypatch.setattr(
        exporters,
        "find_program",
        lambda name: None if name == "prometheus-redis-exporter" else real(name),
    )
    stack = plan(tmp_path)
    assert [e.name for e in stack.exporters] == ["varnish1-exporter", "postgres-exporter"]
    assert stack.exporter_notes == [
        "no metrics for Redis: prometheus-redis-exporter is not installed "
        "(scripts/bootstrap.sh installs it); the layer runs without"
    ]


def test_an_exporter_whose_port_is_taken_is_left_out_with_a_note(tmp_path):
    require_real_stack()
    base = free_base_port()
    stack = Stack(StackConfig(run_dir=tmp_path, project=demo_project(), port=base, app_servers=2))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + OFFSETS["redis_exporter"]))
        squatter.listen()
        stack.check_ports()  # no error: the stack starts without it
    assert "redis-exporter" not in [e.name for e in stack.exporters]
    assert stack.exporter_notes == [
        f"no metrics from redis-exporter: port {base + OFFSETS['redis_exporter']} on "
        "127.0.0.1 is already in use"
    ]


def test_no_exporters_runs_none_and_no_metrics_frontend(tmp_path):
    stack = plan(tmp_path, exporters=False)
    assert stack.exporters == []
    assert stack.load_balancer.metrics_port is None


def test_the_scrape_configuration_of_a_running_stack_lists_every_layer():
    programs = {
        "haproxy": {
            "layer": "load balancer",
            "host": "127.0.0.1",
            "port": 8000,
            "metrics_port": 8001,
        },
        "app1": {"layer": "app server", "host": "127.0.0.1", "port": 8101},
        "redis": {"layer": "cache", "host": "127.0.0.1", "port": 8379},
        "redis-exporter": {
            "layer": "metrics",
            "implementation": "prometheus-redis-exporter",
            "host": "127.0.0.1",
            "port": 8021,
            "exports": "redis",
        },
    }
    targets = targets_from_state(programs)
    assert [(t.job, t.address, t.instance, t.path) for t in targets] == [
        ("haproxy", "127.0.0.1:8001", "haproxy", "/metrics"),
        ("app", "127.0.0.1:8101", "app1", "/-/metrics"),
        ("redis", "127.0.0.1:8021", "redis", "/metrics"),
    ]
    text = render_scrape_config(targets, scrape_interval="1s")
    assert "metrics_path: /-/metrics" in text and "scrape_interval: 1s" in text


def test_an_app_server_empties_its_metrics_directory_when_started_not_when_restarted(tmp_path):
    app = UWSGI("app1", tmp_path, "127.0.0.1", 8101, demo_project(), workers=2)
    app.metrics_dir.mkdir(parents=True)
    (app.metrics_dir / "counter_123.db").write_bytes(b"an earlier run")
    app.empty_metrics_dir()
    assert list(app.metrics_dir.iterdir()) == []
    (app.metrics_dir / "counter_456.db").write_bytes(b"a worker that died")
    app.empty_metrics_dir()  # the supervisor's restart
    assert [p.name for p in app.metrics_dir.iterdir()] == ["counter_456.db"]
    assert app.env()["PROMETHEUS_MULTIPROC_DIR"] == str(app.metrics_dir)


# -- Strata's memcached exporter ---------------------------------------------------------


@pytest.fixture(scope="module")
def memcached(tmp_path_factory):
    binary = find_program("memcached")
    if binary is None:
        skip_locally_fail_in_ci("not installed: memcached (scripts/bootstrap.sh installs it)")
    server = Memcached("memcached", tmp_path_factory.mktemp("mc"), "127.0.0.1", free_port(), binary)
    (server.run_dir / "logs").mkdir()
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def scrape(collector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def command(server, line: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=2) as sock:
        sock.sendall(line)
        return sock.recv(4096)


def test_the_memcached_collector_counts_hits_and_misses_as_the_community_exporter_does(memcached):
    before = scrape(MemcachedCollector(memcached.host, memcached.port))
    assert "memcached_up 1.0" in before
    command(memcached, b"set k 0 0 1\r\nv\r\n")
    command(memcached, b"get k\r\n")
    command(memcached, b"get absent\r\n")
    after = scrape(MemcachedCollector(memcached.host, memcached.port))

    def value(text: str, series: str) -> float:
        line = next(x for x in text.splitlines() if x.startswith(series + " "))
        return float(line.split()[-1])

    hits = 'memcached_commands_total{command="get",status="hit"}'
    misses = 'memcached_commands_total{command="get",status="miss"}'
    assert value(after, hits) == value(before, hits) + 1
    assert value(after, misses) == value(before, misses) + 1
    assert value(after, "memcached_current_items") >= 1
    assert value(after, "memcached_limit_bytes") == memcached.memory_mb * 1024 * 1024


def test_the_memcached_collector_says_down_when_memcached_does_not_answer():
    text = scrape(MemcachedCollector("127.0.0.1", free_port()))
    assert "memcached_up 0.0" in text
    assert "memcached_commands_total" not in text
