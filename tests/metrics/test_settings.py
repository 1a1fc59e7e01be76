"""``STRATA['METRICS']``: on without its block; ``ENABLED`` off counts no request."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import Client

from strata.conf import strata_settings
from tests.metrics.conftest import scrape


def test_metrics_are_on_without_their_block():
    assert strata_settings().metrics.enabled is True


@pytest.mark.parametrize("value", ["yes", {"ENABLED": "yes"}, {"ON": True}])
def test_a_wrong_metrics_block_is_reported(settings, value):
    settings.STRATA = {**settings.STRATA, "METRICS": value}

    assert "strata.E047" in {message.id for message in run_checks()}


def test_with_metrics_off_requests_are_not_counted_but_still_served(newsroom, settings):
    settings.STRATA = {**settings.STRATA, "METRICS": {"ENABLED": False}}
    before = scrape()

    Client().get("/articles/a1/")
    after = scrape()

    name = "strata_request_duration_seconds_count"
    assert after.total(name) == before.total(name)
