"""``/-/timing/`` shows the invalidation bus's figures when the bus is on, under the page's
own access rule. A stand-in log answers ``status()`` as the real one does (the real one,
on Redis, is shown by ``tests/stack/test_purger.py``)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from strata.bus import bus_log
from strata.timing import views

FIGURES = {
    "length": 12,
    "head": "1733600000000-0",
    "head_age": 0.25,
    "identity": "abc:1",
    "lease": {"holder": "app1:4242", "ttl": 2.5},
    "purgers": ["app1:4242", "app2:77"],
    "nodes": {
        "127.0.0.1:6081": {"delivered": "1733600000000-0", "behind": 0, "lag": None},
        "127.0.0.1:6082": {"delivered": "1733599990000-0", "behind": 3, "lag": 1.5},
    },
    "stats": {
        "batches": 4,
        "tags": 9,
        "requests": 8,
        "retries": 1,
        "failures": 1,
        "full_purges": 0,
        "last_failure": "127.0.0.1:6082: <refused>",
    },
}


class StandInLog:
    """What ``strata.bus.bus_log()`` returns, reduced to what the page calls."""

    def __init__(self, figures: dict | None = None, error: Exception | None = None):
        self.figures, self.error = figures, error

    def status(self) -> dict:
        if self.error is not None:
            raise self.error
        return self.figures


@pytest.fixture
def bus_on(monkeypatch):
    def switch(log: StandInLog) -> None:
        monkeypatch.setattr(views, "bus_log", lambda: log)

    return switch


def test_without_a_log_the_page_has_no_bus_figures(newsroom):
    data = json.loads(Client().get("/-/timing/").content)

    assert ("bus" in data) == (bus_log() is not None)  # on Redis (tests.backends) it is on


def test_with_the_bus_on_the_json_carries_its_status_unchanged(newsroom, bus_on):
    bus_on(StandInLog(FIGURES))

    data = json.loads(Client().get("/-/timing/").content)

    assert data["bus"] == FIGURES


def test_the_table_for_people_names_the_lease_holder_and_the_nodes_behind(newsroom, bus_on):
    bus_on(StandInLog(FIGURES))

    html = Client().get("/-/timing/?format=html").content.decode()

    assert "Invalidation bus: 12 entries" in html
    assert "app1:4242 holds the lease" in html
    assert "<td>127.0.0.1:6082</td><td>1733599990000-0</td><td>3</td><td>1.50 s</td>" in html
    assert "last failure: 127.0.0.1:6082: &lt;refused&gt;" in html  # escaped


def test_an_outside_address_sees_no_bus_figures(newsroom, bus_on):
    bus_on(StandInLog(FIGURES))

    response = Client(REMOTE_ADDR="203.0.113.9").get("/-/timing/")

    assert response.status_code == 403
    assert b"app1:4242" not in response.content


def test_a_bus_that_does_not_answer_is_named_and_the_page_still_shows(newsroom, bus_on):
    bus_on(StandInLog(error=ConnectionError("Connection refused")))

    response = Client().get("/-/timing/")
    html = Client().get("/-/timing/?format=html").content.decode()

    assert response.status_code == 200
    assert "Connection refused" in json.loads(response.content)["bus"]["error"]
    assert "Invalidation bus: the cache does not answer" in html
