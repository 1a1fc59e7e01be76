"""Fixtures for request timing: the query cache's small newsroom, a clean cache, fresh figures."""

from __future__ import annotations

import pytest
from django.test import Client

from strata.timing import aggregates
from tests.querycache.conftest import clean_cache, newsroom  # noqa: F401

SECRET = "bench-s3cret"


@pytest.fixture(autouse=True)
def fresh_figures():
    aggregates.reset()
    yield
    aggregates.reset()


@pytest.fixture
def strata_with(settings):
    """Change keys of ``STRATA`` for one test: ``strata_with(PURGE_SECRET="x")``."""

    def change(**keys) -> None:
        settings.STRATA = {**settings.STRATA, **keys}

    return change


@pytest.fixture
def anon() -> Client:
    return Client()


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def sections(response) -> dict[str, float]:
    """``Server-Timing`` as ``{name: milliseconds}`` (plus ``{name}_desc``)."""
    found: dict[str, float] = {}
    for metric in response.headers["Server-Timing"].split(","):
        name, *params = (part.strip() for part in metric.split(";"))
        for param in params:
            key, _, value = param.partition("=")
            if key == "dur":
                found[name] = float(value)
            elif key == "desc":
                found[f"{name}_desc"] = value.strip('"')
    return found
