"""Granian as an app server of the stack, started by its Program class as `strata up` does.

No stack: the demo's settings on SQLite and a local-memory cache are enough for the
health probe, which ``StrataMiddleware`` answers through Strata's WSGI application.
"""

from __future__ import annotations

import pytest

from strata.stack.appserver import APP_SERVERS, Granian
from strata.stack.config import demo_project
from strata.stack.ports import free_port
from strata.stack.probes import http_get
from strata.stack.process import live_session_members

pytest.importorskip("granian")


def test_granian_serves_strata_s_application_and_stops_on_sigterm(tmp_path):
    project = demo_project()
    project.env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CACHE_URL="locmem://",
    )
    server = APP_SERVERS["granian"]("granian-test", tmp_path, "127.0.0.1", free_port(), project, 1)
    assert isinstance(server, Granian)
    server.start()
    try:
        server.wait_ready()
        answer = http_get(server.host, server.port, project.health_path)
        session = server.pid
    finally:
        server.stop()
    assert answer.status == 200
    # Django's StrataMiddleware answered, in a worker of this server.
    assert answer.headers["x-strata-server"].startswith("granian-test pid=")
    assert answer.headers["x-strata-server"] != f"granian-test pid={session}"
    assert server.process.returncode == 0  # SIGTERM: a clean stop, not a kill
    assert not live_session_members(session)
