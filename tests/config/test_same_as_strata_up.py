"""One source of truth: for a one-host inventory, `strata config` renders what `strata up` does.

Both render the same templates. What may differ is only what a production host needs
and a private run directory does not: where HAProxy's admin socket and Redis's files
live, the user HAProxy drops to, per-server maxconn, the purge secret read from a file
instead of written into the VCL, and Gunicorn's control socket turned off.
"""

from __future__ import annotations

import re

import pytest

from strata.stack.config import StackConfig, demo_project
from strata.stack.stack import Stack
from tests.config.helpers import ONE_HOST, render_text, require_program
from tests.helpers import make_run_dir, remove_run_dir

# Lines only `strata up` writes, and lines only `strata config` writes, per file.
ALLOWED = {
    "haproxy.cfg": (
        [
            r"stats socket /tmp/\S+/haproxy/admin\.sock ",
            r"server app\d 127\.0\.0\.1:2010\d check$",
            r"^\s+bind 127\.0\.0\.1:20001$",  # HAProxy's metrics: base port + 1
        ],
        [
            r"stats socket /run/haproxy/admin\.sock ",
            r"# Started as root to bind the public ports",
            r"^\s+(user|group) haproxy$",
            r"server app\d 127\.0\.0\.1:2010\d check maxconn 2$",
            r"^\s+bind 127\.0\.0\.1:8405$",  # HAProxy's metrics: [monitoring]'s port
        ],
    ),
    "varnish.vcl": (
        [r"(?i)secret", r"client\.ip !~ purgers"],
        [r"(?i)secret", r"client\.ip !~ purgers", r"^\s+# written into the VCL; a missing"],
    ),
    "uwsgi.ini": ([], []),
    "gunicorn.conf.py": (
        [],
        [r"^control_socket_disable = True$", r"^# (Gunicorn 27 opens|user; none is needed)"],
    ),
    "redis.conf": (
        [r"^dir /tmp/\S+/redis$", r"^pidfile /tmp/\S+/redis/redis\.pid$"],
        [
            r"^dir /var/lib/redis$",
            r"^pidfile /run/redis/redis-server\.pid$",
            r"^include /etc/redis/strata-auth\.conf$",
            r"^# (The password of clients on other hosts|\"-DENIED Redis is running in pro"
            r"|server may become a replica after a failover)",
        ],
    ),
}


@pytest.fixture
def both(tmp_path):
    """(strata up's config directory, strata config's host directory) for one topology."""
    require_program("haproxy")
    require_program("varnishd")
    require_program("redis-server")
    run_dir = make_run_dir()
    try:
        stack = Stack(
            StackConfig(
                run_dir=run_dir,
                project=demo_project(),
                port=20000,
                app_servers=3,
                workers=2,
                pool="haproxy",
                app_server="uwsgi",
                cache="redis",
            )
        )
        # What `strata up` writes before it starts anything (HAProxy's includes haproxy -c).
        stack.load_balancer.prepare()
        for varnish in stack.accelerators:
            varnish.render_vcl()
        for app in stack.app_servers:
            app.prepare()
        stack.cache.prepare()
        text = ONE_HOST.replace(
            'project_dir = "/srv/newsroom/demo"', f'project_dir = "{demo_project().directory}"'
        )
        render_text(text, tmp_path / "out")
        yield run_dir / "config", tmp_path / "out/hosts/web"
    finally:
        remove_run_dir(run_dir)


def _compare(kind: str, up_text: str, config_text: str) -> None:
    up_only, config_only = ALLOWED[kind]

    def kept(text: str, patterns: list[str]) -> list[str]:
        """The lines of ``text`` that no pattern allows to differ."""
        return [
            line
            for line in text.splitlines()
            if not any(re.search(pattern, line) for pattern in patterns)
        ]

    # Every other line is the same, in the same order.
    assert kept(up_text, up_only) == kept(config_text, config_only)


def test_haproxy_config_is_strata_ups(both):
    up, config = both
    _compare(
        "haproxy.cfg",
        (up / "haproxy.cfg").read_text(),
        (config / "etc/haproxy/haproxy.cfg").read_text(),
    )


def test_vcl_is_strata_ups_but_for_where_the_secret_comes_from(both):
    up, config = both
    up_vcl = (up / "varnish1.vcl").read_text()
    config_vcl = (config / "etc/varnish/strata.vcl").read_text()
    _compare("varnish.vcl", up_vcl, config_vcl)
    assert "std.fileread" in config_vcl and "std.fileread" not in up_vcl


def test_app_server_configs_are_strata_ups(both):
    up, config = both
    for name in ("app1", "app2", "app3"):
        _compare(
            "uwsgi.ini",
            (up / f"{name}.uwsgi.ini").read_text(),
            (config / f"etc/strata/{name}.uwsgi.ini").read_text(),
        )


def test_redis_config_is_strata_ups(both):
    up, config = both
    _compare(
        "redis.conf", (up / "redis.conf").read_text(), (config / "etc/redis/redis.conf").read_text()
    )
