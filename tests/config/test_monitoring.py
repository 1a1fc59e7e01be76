"""`strata config`'s monitoring: Prometheus's scrape jobs for every layer, the Grafana
dashboard (a row per tier of the stack), and the exporters of each host."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from strata.config.dashboard import SCHEMA_VERSION, TIERS, dashboard, promql
from strata.config.inventory import InventoryError, parse_inventory
from strata.config.monitoring import POSTGRES_PASSWORD_FILE, scrape_targets
from tests.config.helpers import ONE_HOST, example, example_text, render_text, require_program

TIER_ORDER = [
    "Load balancer",
    "Web accelerator",
    "App server and page cache",
    "Query cache",
    "Cache server",
    "Database",
    "Purge window",
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("monitoring") / "out"
    render_text(example_text(), out)
    return out


# -- the dashboard -----------------------------------------------------------------------


def test_the_dashboard_has_a_row_per_tier_in_the_order_a_request_meets_them():
    model = dashboard()
    rows = [p["title"] for p in model["panels"] if p["type"] == "row"]
    assert [next(t for t in TIER_ORDER if row.startswith(t)) for row in rows] == TIER_ORDER
    assert model["schemaVersion"] == SCHEMA_VERSION
    assert model["templating"]["list"][0]["type"] == "datasource"


def test_each_panel_sits_below_its_row_on_a_24_column_grid_with_its_own_id():
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    row_y = -1
    for panel in panels:
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            assert grid["y"] > row_y and grid["w"] == 24
            row_y = grid["y"]
        else:
            assert grid["y"] == row_y + 1  # the line below its row
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("tier", TIERS, ids=lambda t: t.title)
def test_every_tier_shows_its_rate_and_where_it_has_them_its_hit_ratio_and_quantiles(tier):
    titles = " | ".join(p.title for p in tier.panels)
    assert re.search(r"/s\b", titles), titles  # requests, commands, transactions, purges
    if not tier.title.startswith(("Load balancer", "Purge window")):
        assert "hit ratio" in titles.lower(), titles
    if tier.title.startswith(("App server", "Query cache", "Cache server", "Purge window")):
        assert "p50/p99" in titles, titles


def test_every_query_is_valid_promql(tmp_path):
    """promtool checks each expression as a recording rule: a typo in a metric's name
    is for the real-Prometheus test, a syntax error is caught here."""
    promtool = require_program("promtool")
    rules = [
        {"record": f"strata:check:{i}", "expr": promql(q.expr)}
        for i, q in enumerate(q for t in TIERS for p in t.panels for q in p.queries)
    ]
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_written_dashboard_is_the_json_of_the_model(rendered):
    written = json.loads((rendered / "grafana/strata-dashboard.json").read_text())
    assert written["panels"] == dashboard()["panels"]
    assert written["title"] == "Strata: newsroom"


# -- Prometheus's scrape configuration -----------------------------------------------------


def test_prometheus_scrapes_each_app_server_directly_not_through_the_load_balancer():
    inventory = example()
    apps = [t for t in scrape_targets(inventory) if t.job == "app"]
    assert [(t.address, t.path, t.instance) for t in apps] == [
        (f"{a.host.address}:{a.port}", "/-/metrics", a.name) for a in inventory.app_servers
    ]


def test_every_layer_has_a_scrape_job_labelled_by_host(rendered):
    text = (rendered / "prometheus/prometheus.yml").read_text()
    jobs = re.findall(r"job_name: (\w+)", text)
    assert jobs == ["haproxy", "varnish", "app", "redis", "postgres"]
    assert 'targets: ["10.0.1.1:8405"]' in text  # HAProxy's own exporter on lb1
    assert 'host: "db2"' in text and "scrape_interval: 15s" in text


def test_prometheus_accepts_the_scrape_configuration(rendered):
    promtool = require_program("promtool")
    path = rendered / "prometheus/prometheus.yml"
    check = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


# -- what the hosts get ---------------------------------------------------------------------


def test_haproxy_exports_on_its_private_address_in_a_frontend_of_its_own(rendered):
    cfg = (rendered / "hosts/lb1/etc/haproxy/haproxy.cfg").read_text()
    frontend = cfg.split("frontend metrics")[1].split("\n\n")[0]
    assert "bind 10.0.1.1:8405" in frontend
    assert "use-service prometheus-exporter if { path /metrics }" in frontend
    public = cfg.split("frontend public")[1].split("\nbackend ")[0]
    assert "prometheus-exporter" not in public.split("frontend metrics")[0]


def test_the_prometheus_host_may_read_the_metrics_of_every_app_server(rendered):
    settings = (rendered / "hosts/app1/etc/strata/strata_settings.py").read_text()
    assert 'INTERNAL_IPS = [*globals().get("INTERNAL_IPS", ()), "10.0.6.1"]' in settings
    allowed = settings.split("ALLOWED_HOSTS = [")[1].split("]")[0]
    for address in ("10.0.3.1", "10.0.3.4"):  # Prometheus's Host header: the app's address
        assert f'"{address}"' in allowed


def test_each_app_server_counts_in_a_directory_emptied_at_every_start(rendered):
    unit = (rendered / "hosts/app4/etc/systemd/system/strata-app4.service").read_text()
    assert "RuntimeDirectory=strata-app4" in unit
    assert "Environment=PROMETHEUS_MULTIPROC_DIR=/run/strata-app4" in unit
    gunicorn = (rendered / "hosts/app4/etc/strata/app4.gunicorn.conf.py").read_text()
    assert "multiprocess.mark_process_dead(worker.pid)" in gunicorn


def test_no_exporter_file_holds_a_secret(rendered):
    secrets = dict(
        line.split("=", 1)
        for line in (rendered / "secrets.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    for path in rendered.glob("hosts/*/etc/default/prometheus-*"):
        text = path.read_text()
        assert not any(value in text for value in secrets.values()), path
    postgres = (rendered / "hosts/db1/etc/default/prometheus-postgres-exporter").read_text()
    assert f'DATA_SOURCE_PASS_FILE="{POSTGRES_PASSWORD_FILE}"' in postgres
    assert "DATA_SOURCE_NAME" not in postgres


def test_memcached_hosts_run_strata_s_own_exporter(tmp_path):
    text = ONE_HOST.replace("[[cache]]\n", '[[cache]]\nkind = "memcached"\n')
    render_text(text, tmp_path / "out")
    web = tmp_path / "out/hosts/web"
    unit = (web / "etc/systemd/system/strata-memcached-exporter.service").read_text()
    assert "/usr/bin/python3 /usr/local/lib/strata/memcached_exporter.py" in unit
    source = (web / "usr/local/lib/strata/memcached_exporter.py").read_text()
    assert "class MemcachedCollector" in source
    assert "job_name: memcached" in (tmp_path / "out/prometheus/prometheus.yml").read_text()


def test_a_monitoring_host_must_be_one_of_the_hosts():
    text = example_text().replace('host = "mon1"', 'host = "nowhere"')
    with pytest.raises(InventoryError, match=r"monitoring\.host: 'nowhere' is not in \[hosts\]"):
        parse_inventory(text)
