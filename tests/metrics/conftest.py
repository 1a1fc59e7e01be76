"""Fixtures for the metrics: the query cache's small newsroom, a clean cache, and a way to
read ``/-/metrics`` as numbers."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from strata.timing import aggregates
from tests.querycache.conftest import clean_cache, newsroom  # noqa: F401


@pytest.fixture(autouse=True)
def fresh_figures():
    aggregates.reset()  # view names by path start empty, as in a new process
    yield
    aggregates.reset()


class Scrape:
    """One reading of ``/-/metrics``, parsed by prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in self.families.values()
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name{labels}`` (exactly those labels), 0 when absent."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, found), value in self.samples.items()
            if sample == name and wanted <= set(found)
        )


def scrape(client: Client | None = None) -> Scrape:
    """Read ``/-/metrics`` from loopback (``client``'s own headers when given)."""
    response = (client or Client()).get("/-/metrics")
    assert response.status_code == 200, response.content[:300]
    return Scrape(response.content.decode())
