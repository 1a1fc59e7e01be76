"""Markers: unique per run, key and sequence number, unchanged by escaping and slugging."""

from __future__ import annotations

import html

from django.utils.text import slugify

from strata.check.markers import (
    RUN_ID,
    decode_seqs,
    encode_seqs,
    key_of,
    marker,
    markers_in,
    new_run_id,
)


def test_a_marker_survives_html_escaping_and_slugify():
    text = marker("ab12cd", key_of("title", 3), 17)
    assert text == "chk-ab12cd-title3-v17"
    assert html.escape(text) == text
    assert slugify(f"Check article 3 · {text}").endswith(text)


def test_markers_are_found_per_key_and_other_runs_are_ignored():
    page = (
        f"<h1>Check {marker('run1', 'title3', 17)}</h1><p>{marker('run1', 'comment3', 1)}</p>"
        f"<p>{marker('run1', 'comment3', 2)}</p><p>{marker('old0', 'comment3', 9)}</p>"
        "<p>chk-run1-comment3-v27x chk-run1-title13-v1</p>"
    )
    assert markers_in("run1", page) == {"title3": {17}, "comment3": {1, 2, 27}, "title13": {1}}


def test_sequence_numbers_are_stored_as_ranges():
    assert encode_seqs([5, 1, 2, 3, 9, 10]) == "1-3,5,9-10"
    assert decode_seqs("1-3,5,9-10") == (1, 2, 3, 5, 9, 10)
    assert encode_seqs([]) == "" and decode_seqs("") == ()


def test_run_ids_are_fresh_and_safe_in_markers():
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50 and all(RUN_ID.match(i) for i in ids)
