"""System checks explain a misconfigured STRATA setting, with an ID and a hint."""

from __future__ import annotations

import pytest

from strata.checks import check_strata_setting


def ids(errors):
    return [error.id for error in errors]


def test_the_default_setting_passes(settings):
    settings.STRATA = {}
    assert check_strata_setting() == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not a dict", ["strata.E001"]),
        ({"EDGE_TTLL": 5}, ["strata.E002"]),
        ({"EDGE_TTL": -1}, ["strata.E003"]),
        ({"EDGE_TTL": "10"}, ["strata.E003"]),
        ({"HEALTH_PATH": "health"}, ["strata.E004"]),
    ],
)
def test_each_mistake_has_its_own_check(settings, value, expected):
    settings.STRATA = value
    errors = check_strata_setting()
    assert ids(errors) == expected
    assert all(error.hint for error in errors)
