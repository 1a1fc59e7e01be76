"""The whole stack, real programs on loopback: the journey of a request and its failures."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time

import pytest

from strata.stack.probes import http_get, line_probe
from tests.helpers import Client

pytestmark = pytest.mark.stack


def client_for(stack) -> Client:
    return Client(stack.config.host, stack.config.port)


def test_every_layer_is_a_real_running_program(stack):
    names = [program.implementation for program in stack.programs]
    assert names == [
        "PostgreSQL",
        "Redis",
        "uWSGI",
        "uWSGI",
        "Varnish",
        "strata_purger",  # the invalidation bus (Redis) to the accelerators
        "HAProxy",
        # each layer's counters for Prometheus (HAProxy exports its own)
        "prometheus-varnish-exporter",
        "prometheus-redis-exporter",
        "prometheus-postgres-exporter",
    ]
    assert all(program.running() for program in stack.programs)
    assert stack.embedded == []
    rows = {row.implementation: row for row in stack.status_rows()}
    assert rows["Varnish"].version.startswith("7.")
    assert rows["PostgreSQL"].pid == stack.database.pid


def test_request_goes_through_every_layer_and_back(stack):
    client = client_for(stack)
    # The newest article, read straight from PostgreSQL, is on the home page.
    newest = subprocess.run(
        [
            str(stack.database.bindir / "psql"),
            "-h",
            stack.database.host,
            "-p",
            str(stack.database.port),
            "-U",
            "postgres",
            "-d",
            "strata",
            "-tAc",
            "SELECT title FROM newsroom_article ORDER BY published_at DESC, id DESC LIMIT 1",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    answer = client.get("/?journey=1")
    assert answer.status == 200
    assert newest and newest in answer.text.replace("&#x27;", "'")
    assert answer.getheader("X-Cache") == "MISS"  # Varnish answered, and fetched it
    assert answer.getheader("X-Strata-Server").split()[0] in {"app1", "app2"}  # an app server
    # Logging in stores the session in Redis (cached_db sessions): Django used the cache server.
    keys_before = _redis_dbsize(stack)
    client.login("reader1")
    assert _redis_dbsize(stack) > keys_before


def _redis_dbsize(stack) -> int:
    import socket

    with socket.create_connection((stack.cache.host, stack.cache.port), timeout=2) as sock:
        sock.sendall(b"DBSIZE\r\n")
        return int(sock.recv(64).strip().lstrip(b":"))


def test_second_anonymous_get_is_an_accelerator_hit(stack):
    client = client_for(stack)
    first = client.get("/?second-get")
    second = client.get("/?second-get")
    assert first.getheader("X-Cache") == "MISS"
    assert second.getheader("X-Cache") == "HIT"
    assert second.body == first.body
    assert "s-maxage" in second.getheader("Cache-Control")


def test_logged_in_get_is_never_a_hit(stack):
    client = client_for(stack)
    client.login("reader2")
    for _ in range(3):
        answer = client.get("/?logged-in")
        assert answer.status == 200
        assert answer.getheader("X-Cache") == "PASS"  # Varnish never answers a session
        assert 'id="who">reader2<' in answer.text  # its hello box, filled by ESI
    # And an anonymous visitor of the same URL never gets the personal copy.
    anonymous = client_for(stack).get("/?logged-in")
    assert "reader2" not in anonymous.text


def test_analytics_cookies_do_not_split_the_cache(stack):
    client = client_for(stack)
    client.get("/?analytics")
    answer = client.get("/?analytics", headers={"Cookie": "_ga=GA1.2.3; _gid=xyz"})
    assert answer.getheader("X-Cache") == "HIT"


def test_tls_is_terminated_at_the_load_balancer(stack):
    client = Client(stack.config.host, stack.load_balancer.tls_port, tls=True)
    answer = client.get("/?tls")
    assert answer.status == 200
    assert answer.getheader("X-Strata-Server")


def test_purge_is_refused_from_the_public_side_and_without_the_secret(stack):
    assert client_for(stack).request("PURGE", "/", headers={"xkey-purge": "x"}).status == 405
    varnish = stack.accelerators[0]
    refused = http_get(varnish.host, varnish.port, "/", method="PURGE", headers={"xkey-purge": "x"})
    assert refused.status == 403
    assert varnish.purge(["no-such-tag"]) == 0


def test_unknown_host_is_not_served_from_or_into_the_cache(stack):
    answer = client_for(stack).get("/", headers={"Host": "evil.example"})
    assert answer.status == 400


def _steady_requests(stack, stop: threading.Event, results: list, threads: int = 4):
    """Requests that pass the accelerator (a session cookie) so they reach the pool."""

    def loop():
        client = Client(stack.config.host, stack.config.port)
        client.cookies["sessionid"] = "not-a-session"
        deadline = time.monotonic() + 60  # bounded, whatever happens
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()  # when the request left, not when it came back
            try:
                answer = client.get("/?steady")
                results.append(
                    (
                        started,
                        answer.status,
                        (answer.getheader("X-Strata-Server") or "").split(" ")[0],
                    )
                )
            except OSError as exc:
                results.append((started, repr(exc), ""))

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    return workers


def _wait_for(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def test_killed_app_server_is_taken_out_and_brought_back(stack):
    lb = stack.load_balancer
    app1 = stack.app_servers[0]
    assert _wait_for(lambda: lb.server_states("app_pool").get("app1") == "UP", 15)
    stop, results = threading.Event(), []
    workers = _steady_requests(stack, stop, results)
    try:
        time.sleep(1.0)
        served_before = {server for _, _, server in results}
        assert served_before == {"app1", "app2"}
        killed_at = time.monotonic()
        app1.kill()  # SIGKILL to the master and its workers, as a crash would
        assert _wait_for(
            lambda: lb.server_states("app_pool").get("app1", "").startswith("DOWN"), 10
        )
        down_at = time.monotonic()
        time.sleep(1.5)
        failed = [r for r in results if r[0] >= killed_at - 1 and r[1] != 200]
        # Only requests in flight on the killed process may fail: one per worker at most.
        assert len(failed) <= app1.workers, failed
        # Requests sent after the balancer took app1 out are all answered by app2.
        after_down = [r for r in results if r[0] > down_at]
        assert after_down and all(r[2] == "app2" for r in after_down), [
            r for r in results if r[0] > down_at and r[2] != "app2"
        ]

        stack.restart(app1)
        assert _wait_for(lambda: lb.server_states("app_pool").get("app1") == "UP", 15)
        back_at = time.monotonic()
        assert _wait_for(lambda: any(r[2] == "app1" and r[0] > back_at for r in results), 15), (
            "the restarted app server got no traffic"
        )
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)
    errors = [r for r in results if r[1] != 200]
    assert len(errors) <= app1.workers, errors


def test_every_layer_serves_its_counters_for_prometheus(stack):
    counters = {e.target.name: http_get(e.host, e.port, "/metrics") for e in stack.exporters}
    assert {name: a.status for name, a in counters.items()} == dict.fromkeys(
        ["varnish1", "redis", "postgres"], 200
    )
    assert b"varnish_main_cache_hit " in counters["varnish1"].body
    assert b"redis_up 1" in counters["redis"].body
    assert b"pg_up 1" in counters["postgres"].body
    haproxy = stack.load_balancer.metrics()
    assert 'haproxy_frontend_http_requests_total{proxy="public"}' in haproxy
    # ... on a port of its own: the public frontend does not answer it.
    assert b"haproxy_process" not in http_get(stack.config.host, stack.config.port, "/metrics").body
    state = json.loads((stack.run_dir / "state.json").read_text())["programs"]
    assert state["varnish1-exporter"]["exports"] == "varnish1"
    assert state["haproxy"]["metrics_port"] == stack.load_balancer.metrics_port


def test_each_app_server_counts_in_a_directory_of_its_own(stack):
    for app in stack.app_servers:
        assert app.env()["PROMETHEUS_MULTIPROC_DIR"] == str(app.metrics_dir)
        assert any(app.metrics_dir.iterdir())  # its workers' counter files
    assert stack.purgers[0].env()["PROMETHEUS_MULTIPROC_DIR"] == str(
        stack.app_servers[0].metrics_dir
    )  # the purger's counters are served by the app server beside it


def test_redis_answers_on_its_own_port_only(stack):
    assert line_probe(stack.cache.host, stack.cache.port, b"PING\r\n", b"+PONG")


def test_the_alternative_topology_serves_and_stops_cleanly():
    """uWSGI app servers, memcached, and Varnish's own director instead of the HAProxy pool."""
    from strata.stack.config import StackConfig, demo_project
    from strata.stack.stack import Stack
    from tests.helpers import free_base_port, make_run_dir, remove_run_dir, require_real_stack

    require_real_stack()
    run_dir = make_run_dir()
    alternative = Stack(
        StackConfig(
            run_dir=run_dir,
            project=demo_project(),
            port=free_base_port(),
            app_servers=2,
            workers=1,
            app_server="gunicorn",
            cache="memcached",
            pool="varnish",
        )
    )
    try:
        alternative.start()
        assert [p.implementation for p in alternative.programs] == [
            "PostgreSQL",
            "Memcached",
            "Gunicorn",
            "Gunicorn",
            "Varnish",
            "HAProxy",
            "prometheus-varnish-exporter",
            "strata memcached exporter",  # Debian 12 packages none
            "prometheus-postgres-exporter",
        ]  # no purger: Memcached holds no invalidation log, the app processes purge
        assert [r.layer for r in alternative.status_rows() if r.pid is None] == ["purger"]
        client = client_for(alternative)
        assert client.get("/?alt").getheader("X-Cache") == "MISS"
        assert client.get("/?alt").getheader("X-Cache") == "HIT"
        memcached = next(e for e in alternative.exporters if e.target is alternative.cache)
        counters = http_get(memcached.host, memcached.port, "/metrics").body.decode()
        assert "memcached_up 1.0" in counters
        assert re.search(r'memcached_commands_total\{command="get",status="hit"\} [1-9]', counters)
        sessions = [p.pid for p in alternative.programs]
    finally:
        alternative.stop()
        remove_run_dir(run_dir)
    from strata.stack.process import live_session_members

    assert all(not live_session_members(pid) for pid in sessions)
