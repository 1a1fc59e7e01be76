"""``STRATA['TIMING']`` is checked like every other block (``strata.E024``, ``W025``)."""

from __future__ import annotations

import pytest

from strata.checks import check_strata_setting
from strata.conf import strata_settings
from strata.timing.checks import check_timings_stay_personal


@pytest.mark.parametrize(
    "block",
    [
        "on",
        {"ENABLE": True},
        {"ENABLED": "yes"},
        {"SERVER_TIMING": "public"},
        {"FLUSH_INTERVAL": -1},
        {"FLUSH_INTERVAL": "5"},
        {"SLOW_QUERIES": 100},
        {"SLOW_QUERIES": 1.5},
    ],
)
def test_a_bad_timing_block_is_explained(settings, block):
    settings.STRATA = {"TIMING": block}

    errors = check_strata_setting()

    assert [error.id for error in errors] == ["strata.E024"]
    assert errors[0].hint


def test_good_timing_blocks_pass(settings):
    for block in (
        {},
        {"ENABLED": False},
        {"SERVER_TIMING": "all", "FLUSH_INTERVAL": 0.5, "SLOW_QUERIES": 0},
    ):
        settings.STRATA = {"TIMING": block}
        assert check_strata_setting() == []


def test_timings_on_shared_pages_behind_an_accelerator_are_flagged(settings):
    settings.STRATA = {
        "TIMING": {"SERVER_TIMING": "all"},
        "ACCELERATORS": ["http://127.0.0.1:6081"],
        "PURGE_SECRET": "s",
    }

    assert [error.id for error in check_timings_stay_personal()] == ["strata.W025"]


def test_timing_is_on_by_default_and_bad_values_fall_back_to_defaults(settings):
    settings.STRATA = {}
    timing = strata_settings().timing
    assert (timing.enabled, timing.server_timing, timing.flush_interval) == (True, "personal", 5)

    settings.STRATA = {"TIMING": {"SERVER_TIMING": "public", "FLUSH_INTERVAL": "x"}}
    timing = strata_settings().timing
    assert (timing.server_timing, timing.flush_interval, timing.slow_queries) == ("personal", 5, 3)
