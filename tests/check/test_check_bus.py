"""`strata check --start` on the real stack, with the invalidation bus's drills: articles
retitled by `manage.py edit_article`, a process that knows only the database and the
cache, while the purger is SIGKILLed and while the writers SIGKILL themselves right after
their commit. Nothing may be stale beyond the purge window, through the load balancer."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from strata.check.scenario import demo_scenario
from strata.cli.main import cli
from strata.stack.process import pid_alive
from tests.helpers import free_base_port, make_run_dir, remove_run_dir, require_real_stack

pytestmark = pytest.mark.stack

# The demo's objects and reads, a comment form, and titles changed only by the command
# (the admin's change form would write the title back from what it read: a lost update).
SCENARIO = """
name = "newsroom, retitled by a script"
ignore = ['<ul class="messagelist">.*?</ul>']

[traffic]
write_share = 0.05

[users]
reader = [{ username = "reader1", password = "newsroom" },
          { username = "reader2", password = "newsroom" }]
editor = [{ username = "admin", password = "admin" }]

[objects]
count = 4
[[objects.find]]
path = "/"
pattern = 'href="/articles/(?P<slug>[A-Za-z0-9_-]+)/"'
[[objects.find]]
path = "/articles/{slug}/"
pattern = 'href="/authors/(?P<author>[A-Za-z0-9_-]+)/"'
[[objects.find]]
path = "/admin/newsroom/article/?q={slug}"
user = "editor"
pattern = 'href="/admin/newsroom/article/(?P<pk>[0-9]+)/change/'

[[reads]]
path = "/"
weight = 2
[[reads]]
path = "/articles/{slug}/"
weight = 6
[[reads]]
path = "/authors/{author}/"
weight = 2

[[writes]]
name = "comment"
user = "reader"
page = "/articles/{slug}/"
form = ".comment-form"
fields = { body = "A comment from strata check: {marker}" }
keeps = "all"
shows_on = ["/articles/{slug}/"]

[[writes]]
name = "retitle"
via = "command"
command = ["edit_article", "{pk}", "--title", "Retitled {n} · {marker}"]
kill_after_commit = ["--kill-after-commit"]
keeps = "last"
shows_on = ["/articles/{slug}/"]
weight = 0.5
"""


def test_writes_by_a_script_that_knows_only_the_database_and_cache_are_fresh_at_the_edge(
    tmp_path,
):
    require_real_stack()
    scenario = tmp_path / "retitle.toml"
    scenario.write_text(SCENARIO)
    run_dir = make_run_dir()
    report = tmp_path / "check.json"
    try:
        result = CliRunner().invoke(
            cli,
            [
                "check",
                "--start",
                "--run-dir",
                str(run_dir),
                "--port",
                str(free_base_port()),
                "--scenario",
                str(scenario),
                "--seconds",
                "6",
                "--faults",
                "purger-kill,writer-kill",
                "--phase-seconds",
                "10",
                "--out",
                str(report),
            ],
        )
        data = json.loads(report.read_text()) if report.exists() else None
        assert result.exit_code == 0, result.output + json.dumps(data and data["verdict"])
        commands = (run_dir / "check" / data["run_id"] / "commands.log").read_text()
    finally:
        remove_run_dir(run_dir)

    phases = {phase["name"]: phase for phase in data["phases"]}
    assert list(phases) == ["baseline", "purger-kill", "writer-kill", "final"]
    totals = data["totals"]
    assert totals["beyond_window"] == 0 and totals["lost"] == 0 and totals["phantoms"] == 0
    assert data["verdict"]["ok"] is True and data["verdict"]["unverified"] == []
    assert not data["notes"]  # the stack runs a purger: the writers got no accelerators

    # Scripts wrote in every phase, and were read back fresh through the load balancer.
    assert all(phases[name]["writes_command"] > 0 for name in ("baseline", "purger-kill"))
    assert phases["writer-kill"]["writes_killed"] > 0
    assert phases["baseline"]["purge_window"]["writes"] > 0
    assert "--kill-after-commit  -> -9" in commands
    # The purger was killed, restarted by the supervisor, and the edge caught up.
    purger = phases["purger-kill"]["details"]
    assert purger["new_pid"] != purger["pid"] and not pid_alive(purger["pid"])
    assert phases["purger-kill"]["recovery_seconds"] is not None
    assert phases["writer-kill"]["details"]["stopped_killing"] is True


def test_the_demo_scenario_writes_through_a_command_too():
    # Plain `strata check` exercises the path: the demo's note is such a write.
    assert [w.name for w in demo_scenario().commands] == ["note"]
