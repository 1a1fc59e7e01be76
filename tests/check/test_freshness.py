"""The freshness checker on hand-built histories: stale by age, phantoms, lost writes."""

from __future__ import annotations

import pytest

from strata.bench.stats import percentile
from strata.check.freshness import FinalView, bucket_of, check
from strata.check.history import ACKED, NOT_SENT, REJECTED, UNKNOWN, History, Phase, Read, Write

KEEPS = {"title": "last", "comment": "all"}
WINDOW = 2.5


def write(key: str, seq: int, acked_at: float, outcome: str = ACKED) -> Write:
    status = {ACKED: 302, UNKNOWN: 502, REJECTED: 403, NOT_SENT: 500}[outcome]
    return Write(0, key, seq, "/form/", acked_at - 0.02, acked_at, status, outcome)


def read(start: float, seen=None, must=(), who="anon", x_cache="HIT", status=200) -> Read:
    return Read(
        1,
        "/articles/a/",
        who,
        start,
        start + 0.005,
        status,
        {key: tuple(sorted(seqs)) for key, seqs in (seen or {}).items()},
        tuple(must),
        x_cache,
        "page-hit",
        "app1",
    )


def judge(writes, reads, phases=None, final=None, purge_retry=0.0):
    history = History(reads=list(reads), writes=list(writes))
    phases = phases or [Phase("baseline", 0.0, end=1000.0)]
    return check(history, phases, WINDOW, KEEPS, final, purge_retry)


def test_a_read_that_shows_the_newest_acknowledged_write_is_fresh():
    verdict = judge([write("title1", 1, 10.0)], [read(10.5, {"title1": {1}})])
    figures = verdict.phases[0]
    assert figures.reads_checked == 1 and figures.stale_total == 0 and not verdict.failed


def test_a_read_that_started_before_the_commit_may_still_show_the_older_value():
    verdict = judge([write("title1", 1, 10.0)], [read(9.999, {}, must=["title1"])])
    assert verdict.phases[0].stale_total == 0


@pytest.mark.parametrize(
    "age, bucket, beyond",
    [(0.01, "0ms", 0), (0.3, "50ms", 0), (1.5, "1s", 0), (3.0, "1s", 1)],
)
def test_a_stale_read_is_counted_in_the_bucket_of_its_age(age, bucket, beyond):
    verdict = judge([write("title1", 1, 10.0)], [read(10.0 + age, must=["title1"])])
    figures = verdict.phases[0]
    assert figures.stale[bucket] == 1 and figures.stale_total == 1
    assert figures.beyond_window == beyond
    assert verdict.failed == bool(beyond)
    (sample,) = verdict.stale_reads
    assert (sample.key, sample.shown, sample.expected) == ("title1", 0, 1)
    assert sample.age == pytest.approx(age)


def test_the_age_counts_from_the_oldest_write_the_read_misses_not_the_newest():
    # A page stuck on v0 while writes keep coming is as old as its first missed commit.
    writes = [write("title1", 1, 10.0), write("title1", 2, 12.0), write("title1", 3, 13.9)]
    verdict = judge(writes, [read(14.0, must=["title1"])])
    (sample,) = verdict.stale_reads
    assert (sample.missed, sample.expected) == (1, 3)
    assert sample.age == pytest.approx(4.0)
    assert verdict.phases[0].beyond_window == 1


def test_a_page_showing_a_newer_write_than_expected_is_fresh():
    writes = [write("title1", 1, 10.0), write("title1", 2, 12.0)]
    assert judge(writes, [read(11.0, {"title1": {2}})]).phases[0].stale_total == 0


def test_comments_show_their_highest_marker_and_titles_their_lowest():
    writes = [write("comment1", 1, 10.0), write("comment1", 2, 11.0)]
    writes += [write("title1", 1, 10.0), write("title1", 2, 11.0)]
    # All comments are on the page; one part of the page still shows title v1.
    verdict = judge(writes, [read(12.0, {"comment1": {1, 2}, "title1": {1, 2}})])
    (sample,) = verdict.stale_reads
    assert (sample.key, sample.shown) == ("title1", 1)


def test_a_key_that_appears_on_a_page_is_checked_even_if_the_page_need_not_show_it():
    verdict = judge(
        [write("title1", 1, 10.0), write("title1", 2, 11.0)], [read(12.0, {"title1": {1}})]
    )
    assert verdict.phases[0].stale["1s"] == 1


def test_writes_of_unknown_outcome_are_never_expected():
    writes = [write("title1", 1, 10.0), write("title1", 2, 11.0, UNKNOWN)]
    assert judge(writes, [read(12.0, {"title1": {1}})]).phases[0].stale_total == 0


def test_a_value_that_was_never_written_is_a_phantom():
    writes = [
        write("comment1", 1, 10.0),
        write("comment1", 2, 11.0, REJECTED),
        write("comment1", 3, 12.0, UNKNOWN),
    ]
    verdict = judge(
        writes,
        [
            read(13.0, {"comment1": {1, 3}}),  # an unknown write may have committed: fine
            read(13.1, {"comment1": {1, 2}}),  # the rejected one
            read(13.2, {"comment1": {1, 7}}),  # beyond anything sent
            read(13.3, {"title9": {1}}),  # a key nobody writes
        ],
    )
    assert sorted((p.key, p.seq) for p in verdict.phantoms) == [
        ("comment1", 2),
        ("comment1", 7),
        ("title9", 1),
    ]
    assert verdict.failed


def test_errors_and_5xx_are_counted_and_not_checked():
    verdict = judge(
        [write("title1", 1, 10.0)],
        [read(11.0, must=["title1"], status=503), read(11.1, must=["title1"], status=None)],
    )
    figures = verdict.phases[0]
    assert (figures.reads_5xx, figures.reads_errors, figures.reads_checked) == (1, 1, 0)
    assert figures.statuses == {"503": 1}
    assert figures.stale_total == 0


def test_a_read_belongs_to_the_phase_it_started_in_a_write_to_the_one_it_ended_in():
    phases = [Phase("baseline", 0.0, end=20.0), Phase("app-kill", 20.0, end=40.0, fault="app-kill")]
    verdict = judge(
        [write("title1", 1, 10.0), write("title1", 2, 25.0)],
        [read(5.0), read(24.0, must=["title1"])],
        phases,
    )
    assert [p.reads for p in verdict.phases] == [1, 1]
    assert [p.writes_acked for p in verdict.phases] == [1, 1]
    # The read at 24 s missed the write of 10 s: stale in app-kill, 14 s old.
    assert verdict.phase("baseline").stale_total == 0
    assert verdict.phase("app-kill").stale["1s"] == 1


def test_a_write_in_flight_when_a_fault_is_applied_is_that_faults():
    phases = [Phase("baseline", 0.0, end=20.0), Phase("app-kill", 20.0, end=40.0, fault="app-kill")]
    # Sent at 19.99 s; its app server killed at 20 s under it: a 503 at 20.02 s.
    cut = Write(0, "title1", 1, "/t/", 19.99, 20.02, 503, UNKNOWN, "answered 503")
    verdict = judge([cut], [], phases)

    assert verdict.phase("baseline").writes_sent == verdict.phase("baseline").writes_5xx == 0
    assert verdict.phase("app-kill").writes_sent == verdict.phase("app-kill").writes_5xx == 1
    assert verdict.phase("app-kill").failed_writes == ["/t/: answered 503"]


def test_stale_reads_while_the_purge_path_was_down_are_reported_apart():
    phases = [
        Phase("baseline", 0.0, end=20.0),
        Phase(
            "purge-fail",
            20.0,
            end=50.0,
            fault="purge-fail",
            applied=20.0,
            healed=30.0,
            excuses_purges=True,
        ),
    ]
    writes = [write("title1", 1, 25.0)]
    during = read(29.0, must=["title1"])
    within_retry = read(30.0 + 5.0 + WINDOW - 0.1, must=["title1"])
    persisting = read(30.0 + 5.0 + WINDOW + 0.5, must=["title1"])
    verdict = judge(writes, [during, within_retry], phases, purge_retry=5.0)
    figures = verdict.phase("purge-fail")
    assert figures.stale_purge_down == 2
    assert figures.stale_total == 0 and figures.beyond_window == 0 and not verdict.failed
    assert all(s.excused for s in verdict.stale_reads)

    verdict = judge(writes, [during, persisting], phases, purge_retry=5.0)
    assert verdict.phase("purge-fail").beyond_window == 1
    assert verdict.failed


def test_the_purge_window_runs_from_commit_to_the_first_accelerator_read_that_shows_it():
    writes = [write("title1", 1, 10.0)]
    reads = [
        read(10.2, must=["title1"]),  # stale, through the accelerator
        read(10.3, {"title1": {1}}, who="reader", x_cache="PASS"),  # logged in: not counted
        read(10.5, {"title1": {1}}),
    ]
    figures = judge(writes, reads).phases[0]
    summary = figures.window_summary()
    assert summary["p50_ms"] == pytest.approx(500.0)
    assert summary["observed_stale_max_ms"] == pytest.approx(200.0)
    assert figures.stale["50ms"] == 1


def test_a_page_stale_again_after_a_fresh_read_counts_in_the_observed_staleness():
    writes = [write("title1", 1, 10.0), write("title1", 2, 20.0)]
    reads = [
        read(10.1, {"title1": {1}}),  # fresh at once
        read(10.9, must=["title1"]),  # an old render stored after the first purge
        read(11.2, {"title1": {1}}),  # the second purge removed it
        read(21.0, {"title1": {1}}),  # stale for the next write, not for this one
    ]
    figures = judge(writes, reads).phases[0]
    assert figures.windows == [pytest.approx(0.1)]
    assert figures.observed == [pytest.approx(0.9)]


def test_a_write_shown_first_by_a_read_after_the_next_write_has_a_window():
    writes = [write("title1", 1, 10.0), write("title1", 2, 10.2)]
    figures = judge(writes, [read(10.5, {"title1": {2}})]).phases[0]
    assert figures.windows == [pytest.approx(0.5), pytest.approx(0.3)]
    assert figures.windows_unseen == 0


def test_a_write_no_accelerator_read_showed_is_counted_as_unseen():
    figures = judge([write("title1", 1, 10.0)], [read(10.5, {"title1": {1}}, x_cache=None)]).phases[
        0
    ]
    assert figures.windows == [] and figures.windows_unseen == 1


def test_an_acknowledged_comment_missing_after_the_run_is_lost():
    writes = [
        write("comment1", 1, 10.0),
        write("comment1", 2, 11.0),
        write("comment1", 3, 12.0),
        write("comment1", 4, 13.0, UNKNOWN),
        write("comment1", 5, 14.0, UNKNOWN),
    ]
    final = [FinalView("comment1", "/articles/a/", (1, 3, 5))]
    verdict = judge(writes, [], final=final)
    assert [(lost.key, lost.seq) for lost in verdict.lost] == [("comment1", 2)]
    figures = verdict.phases[0]
    assert (figures.lost, figures.unknown_committed, figures.unknown_not_committed) == (1, 1, 1)
    assert verdict.failed


def test_a_title_that_ends_before_its_last_acknowledged_write_lost_the_writes_after():
    writes = [write("title1", s, 10.0 + s) for s in (1, 2, 3)]
    verdict = judge(writes, [], final=[FinalView("title1", "/articles/a/", (1,))])
    assert [lost.seq for lost in verdict.lost] == [2, 3]
    fine = judge(
        writes + [write("title1", 4, 14.0, UNKNOWN)],
        [],
        final=[FinalView("title1", "/articles/a/", (4,))],
    )
    assert not fine.lost and fine.phases[0].unknown_committed == 1


def test_a_key_whose_page_cannot_be_read_after_the_run_is_unverified():
    verdict = judge(
        [write("title1", 1, 10.0)],
        [],
        final=[FinalView("title1", "/articles/a/", (), error="answered 503")],
    )
    assert verdict.unverified == ["title1"] and verdict.failed


def test_a_value_never_written_found_after_the_run_is_a_phantom():
    verdict = judge(
        [write("comment1", 1, 10.0), write("comment1", 2, 11.0, REJECTED)],
        [],
        final=[FinalView("comment1", "/articles/a/", (1, 2))],
    )
    assert [(p.key, p.seq, p.where) for p in verdict.phantoms] == [("comment1", 2, "final")]


def test_buckets_and_percentiles():
    assert [bucket_of(a) for a in (0.0, 0.049, 0.05, 0.999, 1.0)] == [
        "0ms",
        "0ms",
        "50ms",
        "50ms",
        "1s",
    ]
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
