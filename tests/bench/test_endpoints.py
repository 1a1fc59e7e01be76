"""Where the requests go, read from the run directory that `strata up` writes."""

from __future__ import annotations

import json
import os

import pytest

from strata.bench.endpoints import from_run_dir, from_url
from strata.stack.runstate import NoStack


def state(tmp_path, programs, url="http://127.0.0.1:8000/"):
    """A run directory whose state.json names ``programs``: (name, layer, port, more)."""
    described = {
        name: {"layer": layer, "host": "127.0.0.1", "port": port, **more}
        for name, layer, port, more in programs
    }
    (tmp_path / "state.json").write_text(
        json.dumps({"pid": os.getpid(), "url": url, "rows": [], "programs": described})
    )
    return tmp_path


def test_the_pool_port_comes_from_the_load_balancer_and_the_secret_from_its_file(tmp_path):
    programs = [
        ("haproxy", "load balancer", 8000, {"pool_port": 8090}),
        ("varnish1", "accelerator", 8080, {}),
        ("app1", "app server", 8101, {}),
    ]
    (tmp_path / "purge-secret").write_text("s3cret\n")
    ends = from_run_dir(state(tmp_path, programs))
    assert (ends.host, ends.port, ends.pool_port, ends.secret) == (
        "127.0.0.1",
        8000,
        8090,
        "s3cret",
    )
    assert ends.has_accelerator and ends.page_host == "127.0.0.1"
    assert from_run_dir(tmp_path, secret="given").secret == "given"


def test_with_varnish_balancing_the_app_servers_one_app_server_is_the_pool(tmp_path):
    programs = [
        ("haproxy", "load balancer", 8000, {}),
        ("varnish1", "accelerator", 8080, {}),
        ("app1", "app server", 8101, {}),
        ("app2", "app server", 8102, {}),
    ]
    ends = from_run_dir(state(tmp_path, programs))
    assert (ends.pool_host, ends.pool_port) == ("127.0.0.1", 8101)
    assert "one app server (127.0.0.1:8101) of 2" in ends.notes[0]


def test_an_embedded_stack_has_no_accelerator_and_its_app_server_is_the_pool(tmp_path):
    ends = from_run_dir(state(tmp_path, [("app1", "app server", 8000, {})]))
    assert not ends.has_accelerator and ends.pool_port == 8000 and ends.secret == ""


def test_an_unreadable_state_is_no_stack(tmp_path):
    (tmp_path / "state.json").write_text("{")
    with pytest.raises(NoStack, match="cannot read"):
        from_run_dir(tmp_path)


def test_a_stack_given_by_url_has_its_pool_at_strata_ups_offset_unless_told():
    assert from_url("http://127.0.0.1:9000/x").pool_port == 9090
    assert from_url("http://127.0.0.1:9000/", pool="10.0.0.2:7000").pool_host == "10.0.0.2"
    with pytest.raises(NoStack, match="not HOST:PORT"):
        from_url("http://127.0.0.1:9000/", pool="nowhere")
