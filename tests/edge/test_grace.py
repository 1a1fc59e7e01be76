"""Varnish under a failing origin: an expired copy keeps being served, a purged one never.

When the app servers answer an error (the database is down), a page whose lifetime
ended is still served from the accelerator (stale-if-error): it was never invalidated,
only aged. A purged page is gone, so grace cannot bring back content that a write
changed. These run against Strata's VCL with no refresh grace, so that an expired page
is refetched at once and the error path is taken on the first request.
"""

from __future__ import annotations

import time
import uuid

import pytest

from strata.stack.probes import http_get
from tests.edge.helpers import HOST, LOOPBACK, SECRET, poll, running_edge

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def edge():
    with running_edge(refresh_grace="0s") as running:
        yield running


@pytest.fixture(autouse=True)
def origin_up(edge):
    edge.origin.failing = False
    yield
    edge.origin.failing = False


def page_path(name: str, ttl: int) -> tuple[str, str]:
    """A path unique to this test, living ``ttl`` seconds, and its tag."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    return f"/{tag}/{name}?ttl={ttl}&xkey={tag}", tag


def test_an_expired_page_is_served_while_the_origin_fails_and_refreshed_once_it_is_back(edge):
    path, _ = page_path("expired", ttl=1)
    assert edge.get(path) == ("MISS", f"/{path.split('/')[1]}/expired fetch 1")
    time.sleep(1.5)  # past its one-second lifetime

    edge.origin.failing = True
    status, _, body = edge.fetch(path)
    assert (status, body.endswith("fetch 1")) == (200, True)

    edge.origin.failing = False

    def refreshed() -> bool:
        status, _, body = edge.fetch(path)
        return status == 200 and not body.endswith("fetch 1")

    assert poll(refreshed, timeout=5)


def test_a_purged_page_is_never_served_from_grace_while_the_origin_fails(edge):
    path, tag = page_path("purged", ttl=300)
    assert edge.get(path)[0] == "MISS"
    assert edge.get(path)[0] == "HIT"
    purged = http_get(
        LOOPBACK,
        edge.port,
        "/",
        method="PURGE",
        headers={"Host": HOST, "X-Purge-Secret": SECRET, "xkey-purge": tag},
    )
    assert purged.status == 200

    edge.origin.failing = True
    status, _, body = edge.fetch(path)

    assert (status, body) == (503, "origin down")


def test_an_error_is_passed_on_and_not_remembered_once_the_origin_is_back(edge):
    path, _ = page_path("never-cached", ttl=300)
    edge.origin.failing = True
    assert edge.fetch(path)[0:3:2] == (503, "origin down")

    edge.origin.failing = False
    assert edge.get(path)[0] == "MISS"
    assert edge.get(path)[0] == "HIT"
