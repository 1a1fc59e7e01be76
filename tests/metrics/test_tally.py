"""The tally: hits and requests added cheaply, moved into the metric values as
``Histogram.observe`` would have put them; a forked child starts with nothing pending."""

from __future__ import annotations

import os

import pytest
from prometheus_client import CollectorRegistry, Histogram

from strata.metrics.registry import LATE_AFTER, REQUEST_BUCKETS, REQUEST_SECONDS, REQUESTS, Tally

# On a bound, between bounds, below the first and past the last.
DURATIONS = (0.0001, 0.00005, 0.0003, 0.001, 0.0049, 7.0)


def value(child) -> float:
    return child._value.get()


def buckets(histogram) -> list[float]:
    return [bucket.get() for bucket in histogram._buckets]


def test_a_flush_puts_each_duration_in_the_bucket_observe_would():
    tally = Tally()
    view = "tests.metrics.tally-view"
    reference = Histogram(
        "reference_seconds", "", buckets=REQUEST_BUCKETS, registry=CollectorRegistry()
    )
    counter, histogram = (
        REQUESTS.labels(view, "page-hit", ""),
        REQUEST_SECONDS.labels(view, "page-hit"),
    )
    count_before, buckets_before = value(counter), buckets(histogram)
    sum_before = histogram._sum.get()

    for seconds in DURATIONS:
        tally.page_hit(view, seconds)
        reference.observe(seconds)
    assert value(counter) == count_before  # not before the flush
    tally.flush()

    assert value(counter) - count_before == len(DURATIONS)
    grown = [
        after - before for after, before in zip(buckets(histogram), buckets_before, strict=True)
    ]
    assert grown == buckets(reference)
    assert abs(histogram._sum.get() - sum_before - sum(DURATIONS)) < 1e-9


# The child only reads a number and leaves (Python 3.12+ warns about any fork with threads).
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_has_nothing_pending_of_its_parents():
    tally = Tally()
    tally.page_hit("tests.metrics.fork-view", 0.001)
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once
        pending = sum(p.count for p in tally.everything)
        os.write(writing, str(pending).encode())
        os._exit(0)
    os.close(writing)
    child_pending = int(os.read(reading, 20))
    os.close(reading)
    os.waitpid(pid, 0)

    assert child_pending == 0
    assert sum(p.count for p in tally.everything) == 1  # the parent's is still to report


def test_a_request_moves_the_tally_itself_when_the_thread_has_not_for_long():
    tally = Tally()
    tally.running = True  # as if the thread were started, but it never runs
    view = "tests.metrics.late-view"
    counted = REQUESTS.labels(view, "page-hit", "")
    before = value(counted)

    tally.page_hit(view, 0.001)
    assert value(counted) == before  # on time: left to the thread

    tally.flushed_at -= LATE_AFTER + 1
    tally.page_hit(view, 0.001)
    assert value(counted) == before + 2
