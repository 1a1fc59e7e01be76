"""A benchmark primes each tier, checks that it answers, and only then measures it."""

from __future__ import annotations

from strata.bench.load import PythonLoad
from strata.bench.run import BenchPlan, default_paths, run_bench
from strata.bench.tiers import TIERS, tiers_named
from tests.bench.conftest import endpoints_of
from tests.bench.fakestack import FakeStack


def plan_for(endpoints, tiers=TIERS, paths=("/",), **options):
    return BenchPlan(
        endpoints=endpoints,
        paths=list(paths),
        tiers=list(tiers),
        engine=PythonLoad(),
        seconds=options.pop("seconds", 0.2),
        warmup=options.pop("warmup", 0.0),
        connections=options.pop("connections", 2),
        breakdown_requests=options.pop("breakdown_requests", 4),
    )


def test_every_tier_that_answers_is_measured_and_the_bench_tiers_are_broken_down(fake):
    result = run_bench(plan_for(endpoints_of(fake), warmup=0.1))
    assert not result.interrupted
    assert [(r.tier.name, r.status) for r in result.runs] == [
        ("accelerator", "measured"),
        ("page", "measured"),
        ("warm", "measured"),
        ("cold", "measured"),
    ]
    for run in result.runs:
        assert run.load.answered == run.load.requests > 0
        assert run.tier.answered(run.observed)
    cold = result.runs[3]
    assert cold.breakdown.requests == 4
    assert cold.breakdown.over_rule[0][0] == "db"
    assert result.runs[1].breakdown is None


def test_a_tier_that_answers_as_another_is_reported_unavailable_with_what_answered(fake):
    result = run_bench(plan_for(endpoints_of(fake, secret="wrong"), tiers_named("page,warm")))
    page, warm = result.runs
    assert page.status == "measured"
    assert warm.status == "unavailable" and warm.load is None and warm.breakdown is None
    assert warm.reason.startswith("answered by page-hit, not bypass: bench warm (X-Strata")
    assert "the page cache answered before bench mode could skip it" in warm.reason
    assert warm.observed == {"x-strata": "page-hit"}


def test_without_a_secret_the_bench_tiers_say_to_pass_one(fake):
    result = run_bench(plan_for(endpoints_of(fake, secret=""), tiers_named("cold")))
    assert result.runs[0].status == "unavailable"
    assert "pass --secret" in result.runs[0].reason


def test_a_stack_that_does_not_answer_is_unavailable_not_an_error():
    with FakeStack() as gone:
        endpoints = endpoints_of(gone)
    result = run_bench(plan_for(endpoints, tiers_named("page")))
    assert result.runs[0].status == "unavailable"
    assert result.runs[0].reason.startswith(f"no answer from 127.0.0.1:{endpoints.port}")


class CtrlCDuring:
    """A progress display whose n-th phase is interrupted by Ctrl-C while it runs."""

    def __init__(self, phase: str):
        self.phase_text, self.current = phase, ""

    def phase(self, text, seconds=None):
        self.current = text

    def tick(self, elapsed, responses):
        if self.current == self.phase_text:
            raise KeyboardInterrupt

    def step_done(self):
        pass


def test_ctrl_c_keeps_what_was_measured_and_marks_the_rest_not_run(fake):
    plan = plan_for(endpoints_of(fake), seconds=0.5)
    result = run_bench(plan, CtrlCDuring("page /: measuring"))
    assert result.interrupted
    assert [r.status for r in result.runs] == ["measured", "partial", "not run", "not run"]
    assert result.runs[1].load.interrupted
    assert result.runs[2].reason == "stopped by Ctrl-C"


def test_ctrl_c_during_a_warm_up_measures_nothing_more(fake):
    plan = plan_for(endpoints_of(fake), tiers_named("page,cold"), warmup=1.0)
    result = run_bench(plan, CtrlCDuring("page /: warm-up (discarded)"))
    assert result.interrupted
    assert [(r.status, r.load) for r in result.runs] == [("not run", None), ("not run", None)]


def test_the_default_pages_are_home_and_the_first_article_it_links(fake):
    assert default_paths(endpoints_of(fake)) == ["/", "/articles/first-story/"]


class BrokenLoad(PythonLoad):
    def run(self, spec, seconds, connections, tick=None):
        raise RuntimeError("wrk failed: unable to connect")


def test_a_failing_load_generator_is_reported_for_its_tier_and_the_rest_still_run(fake):
    plan = plan_for(endpoints_of(fake), tiers_named("page,cold"))
    plan.engine = BrokenLoad()
    result = run_bench(plan)
    assert [(r.status, r.reason) for r in result.runs] == [
        ("failed", "wrk failed: unable to connect"),
        ("failed", "wrk failed: unable to connect"),
    ]
    assert not result.interrupted


def test_an_app_without_bench_mode_is_named_as_the_reason(fake):
    fake.wrong_every = 1  # every answer from the wrong tier: the app ignores the bench headers
    result = run_bench(plan_for(endpoints_of(fake), tiers_named("warm")))
    assert result.runs[0].status == "unavailable"
    assert result.runs[0].reason.startswith("answered by page-miss, not bypass: bench warm")
    assert "does not support X-Strata-Bench, or the secret is wrong" in result.runs[0].reason
