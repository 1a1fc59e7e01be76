"""The ``X-Strata`` words: one vocabulary for the app, the VCL and whoever reads them back."""

from __future__ import annotations

import re
from pathlib import Path

from strata.edge.outcomes import Outcome, bypass, is_bypass

VCL = Path(__file__).resolve().parents[2] / "strata" / "stack" / "templates" / "varnish.vcl.j2"


def words_the_vcl_sets() -> set[str]:
    return set(re.findall(r'set resp\.http\.X-Strata\s*=\s*"([^"]*)"', VCL.read_text()))


def test_every_word_the_vcl_sets_is_an_outcome_and_every_edge_outcome_is_set_there():
    edge_outcomes = {outcome.value for outcome in Outcome if outcome.name.startswith("EDGE_")}

    assert words_the_vcl_sets() == edge_outcomes


def test_outcomes_are_the_plain_words_on_the_wire():
    assert Outcome.PAGE_HIT == "page-hit"
    assert f"{Outcome.PAGE_STALE}" == "page-stale"
    assert type(str(Outcome.PAGE_MISS)) is str


def test_a_bypass_names_its_reason_after_the_word():
    assert bypass("authorization header") == "bypass: authorization header"
    assert is_bypass(bypass("bench cold"))
    assert not is_bypass(Outcome.PAGE_HIT)
    assert not is_bypass(None)
