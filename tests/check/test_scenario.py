"""Scenario files: the built-in one, and one clear line for every mistake."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import strata.check
from strata.check.scenario import (
    DEMO_SOURCE,
    ScenarioError,
    demo_scenario,
    load_scenario,
    parse_scenario,
    placeholders,
    render,
)
from strata.config import InventoryError, load_inventory, parse_inventory
from tests.config.helpers import ONE_HOST

MINIMAL = """
[users]
editor = { username = "ed", password = "pw" }

[objects]
list = [{ slug = "a", pk = "1" }, { slug = "b", pk = "2" }]

[[reads]]
path = "/posts/{slug}/"

[[writes]]
name = "title"
user = "editor"
page = "/edit/{pk}/"
form = "#edit"
fields = { title = "Post {n} {marker}" }
shows_on = ["/posts/{slug}/"]
"""


def test_the_demo_scenario_reads_the_newsroom_and_writes_comments_titles_and_notes():
    scenario = demo_scenario()
    assert [w.name for w in scenario.writes] == ["comment", "title", "note"]
    assert [w.via for w in scenario.writes] == ["form", "form", "command"]
    assert [w.keeps for w in scenario.writes] == ["all", "last", "all"]
    assert scenario.variables == ("slug", "author", "pk")
    assert scenario.keys(2) == ["comment1", "comment2", "title1", "title2", "note1", "note2"]
    assert scenario.roles() == ["reader", "editor"]  # a command write logs in as nobody
    (note,) = scenario.commands
    assert note.command[:2] == ("edit_article", "{pk}")
    assert note.kill_after_commit == ("--kill-after-commit",)
    assert note.verify == "/articles/{slug}/" and note.weight < 1
    assert scenario.write_share == 0.05
    assert scenario.write_named("title").verify == "/articles/{slug}/"
    assert scenario.source == DEMO_SOURCE


def test_the_demo_scenario_is_a_file_in_the_package_read_like_any_other():
    shipped = Path(strata.check.__file__).parent / "scenarios" / "newsroom.toml"
    assert load_scenario(shipped) == dataclasses.replace(demo_scenario(), source=str(shipped))


def test_the_scenario_in_the_docs_is_valid():
    docs = Path(__file__).resolve().parents[2] / "docs" / "check.md"
    blocks = re.findall(r"```toml\n(.*?)```", docs.read_text(encoding="utf-8"), re.S)
    [example] = [block for block in blocks if "[[writes]]" in block]
    writes = parse_scenario(example, "check.md").writes
    assert [w.name for w in writes] == ["comment", "title", "note"]
    assert [w.via for w in writes] == ["form", "form", "command"]


def test_a_minimal_scenario_file_gets_the_defaults(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(MINIMAL)
    scenario = load_scenario(path)
    assert scenario.source == str(path)
    assert scenario.login.path == "/accounts/login/" and scenario.login.form is None
    assert scenario.objects == ({"slug": "a", "pk": "1"}, {"slug": "b", "pk": "2"})
    assert scenario.count == 2
    assert scenario.logged_in_as == "editor"
    assert scenario.writes[0].success == (302, 303)
    assert scenario.writes[0].keeps == "last"


def broken(old: str, new: str) -> str:
    assert old in MINIMAL, old
    return MINIMAL.replace(old, new)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name = [", "not valid TOML"),
        (
            broken('fields = { title = "Post {n} {marker}" }', 'fields = { title = "Post {n}" }'),
            "writes[1].fields: no field contains the {marker} placeholder",
        ),
        (
            broken('path = "/posts/{slug}/"', 'path = "/posts/{slugg}/"'),
            "reads[1].path: unknown placeholder {slugg} (known here: {slug}, {pk})",
        ),
        (
            broken('page = "/edit/{pk}/"', 'page = "edit/{pk}/"'),
            "writes[1].page: 'edit/{pk}/' (a string) is wrong; expected a path starting with /",
        ),
        (
            broken('form = "#edit"', 'form = "form#edit"'),
            "writes[1].form: 'form#edit' (a string) is wrong; expected a form selector",
        ),
        (
            broken('name = "title"', 'name = "title2"'),
            "writes[1].name: 'title2' (a string) is wrong; expected 1-20 lower-case letters",
        ),
        (
            broken('user = "editor"', 'user = "reader"'),
            "writes[1].user: no users with the role 'reader'",
        ),
        (
            broken('shows_on = ["/posts/{slug}/"]', 'shows_on = ["/posts/{slug}/"]\nkeep = "all"'),
            "writes[1].keep: unknown key; did you mean 'keeps'? expected one of: name, user, ",
        ),
        (
            broken(
                'shows_on = ["/posts/{slug}/"]', 'shows_on = ["/posts/{slug}/"]\nkeeps = "first"'
            ),
            "writes[1].keeps: 'first' (a string) is wrong; expected \"all\" (every write stays",
        ),
        (broken('shows_on = ["/posts/{slug}/"]', ""), "writes[1]: needs shows_on (or verify)"),
        (
            broken('shows_on = ["/posts/{slug}/"]', 'shows_on = ["/"]'),
            "writes[1].shows_on[1]: '/' names no object",
        ),
        (broken("[objects]", "[objects]\nfind = []"), "give either find = [...] steps or a list"),
        (
            broken('{ username = "ed", password = "pw" }', '{ username = "ed" }'),
            "users.editor[1].password: missing; expected a non-empty string",
        ),
        (
            broken("[[reads]]", "[traffic]\nwrite_share = 0.9\n\n[[reads]]"),
            "traffic.write_share: 0.9 (a decimal number) is wrong; expected a number from 0 to 0.5",
        ),
        (
            broken(
                'fields = { title = "Post {n} {marker}" }',
                'fields = { title = "Post {n} {marker" }',
            ),
            "a lone '{'",
        ),
        (
            MINIMAL.replace("[[writes]]", "[[writez]]"),
            "writez: unknown key; did you mean 'writes'?",
        ),
        ('[users]\nreader = { username = "r" }\n', "site.toml: missing [objects]: expected"),
    ],
)
def test_every_mistake_is_one_line_naming_the_file_and_the_entry(text, message):
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(text, "site.toml")
    text = str(raised.value)
    assert re.match(r"site\.toml(:\d+)?: ", text), text
    assert message in text
    assert "\n" not in text.strip()


COMMAND = """
[[writes]]
name = "retitle"
via = "command"
command = ["edit_article", "{pk}", "--title", "Post {n} {marker}"]
kill_after_commit = ["--kill-after-commit"]
shows_on = ["/posts/{slug}/"]
weight = 0.5
"""


def test_a_write_may_be_a_management_command_run_with_only_the_database_and_cache():
    scenario = parse_scenario(MINIMAL + COMMAND)
    form, command = scenario.writes
    assert (form.via, command.via) == ("form", "command")
    assert command.command == ("edit_article", "{pk}", "--title", "Post {n} {marker}")
    assert command.kill_after_commit == ("--kill-after-commit",)
    assert (command.keeps, command.verify, command.weight) == ("last", "/posts/{slug}/", 0.5)
    assert scenario.commands == (command,) and form.weight == 1.0
    assert scenario.keys(1) == ["title1", "retitle1"]
    assert scenario.roles() == ["editor"]


def test_a_scenario_may_write_through_commands_only():
    only = MINIMAL[: MINIMAL.index("[[writes]]")] + COMMAND
    scenario = parse_scenario(only)
    assert [w.name for w in scenario.writes] == ["retitle"] and scenario.roles() == ["editor"]


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            '"--title", "Post {n} {marker}"]',
            '"--title", "Post {n}"]',
            "writes[2].command: no argument contains the {marker} placeholder",
        ),
        (
            'command = ["edit_article",',
            'command = ["manage.py edit_article",',
            "writes[2].command[1]: 'manage.py edit_article' is not a management command's name",
        ),
        (
            '"{pk}", "--title"',
            '"{id}", "--title"',
            "writes[2].command[2]: unknown placeholder {id}",
        ),
        (
            'kill_after_commit = ["--kill-after-commit"]',
            'kill_after_commit = ["--kill={seq}"]',
            "writes[2].kill_after_commit[1]: unknown placeholder {seq} (known here: none)",
        ),
        (
            'via = "command"',
            'via = "command"\nuser = "editor"',
            'writes[2].user: only for a write with via = "form"',
        ),
        ('via = "command"', 'via = "cron"', "writes[2].via: 'cron' (a string) is wrong"),
        ('via = "command"', "", 'writes[2].command: only for a write with via = "command"'),
        ("command = [", "comand = [", "writes[2].comand: unknown key; did you mean 'command'?"),
        ("weight = 0.5", "weight = 0", "writes[2].weight: 0 (a number) is wrong; expected"),
    ],
)
def test_every_mistake_in_a_command_write_is_one_line(old, new, message):
    assert old in COMMAND, old
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(MINIMAL + COMMAND.replace(old, new), "site.toml")
    assert message in str(raised.value), str(raised.value)


def test_find_steps_name_their_variables_once_and_may_use_earlier_ones():
    steps = """
[objects]
count = 3
[[objects.find]]
path = "/"
pattern = 'href="/p/(?P<slug>[a-z]+)/"'
[[objects.find]]
path = "/p/{slug}/"
pattern = 'data-pk="(?P<pk>[0-9]+)"'
"""
    text = MINIMAL.replace(
        '[objects]\nlist = [{ slug = "a", pk = "1" }, { slug = "b", pk = "2" }]', steps
    )
    scenario = parse_scenario(text)
    assert scenario.variables == ("slug", "pk") and scenario.count == 3
    with pytest.raises(ScenarioError, match=r"objects.find\[2\].path: unknown placeholder \{pk\}"):
        parse_scenario(text.replace('path = "/p/{slug}/"', 'path = "/p/{pk}/"'))
    with pytest.raises(
        ScenarioError, match=r"objects.find\[2\].pattern: \{slug\} is already found"
    ):
        parse_scenario(text.replace("(?P<pk>", "(?P<slug>"))
    with pytest.raises(ScenarioError, match=r"needs a named group"):
        parse_scenario(text.replace("(?P<pk>[0-9]+)", "([0-9]+)"))
    with pytest.raises(ScenarioError, match=r"not a regular expression"):
        parse_scenario(text.replace("(?P<pk>[0-9]+)", "(?P<pk>[0-9+"))
    with pytest.raises(ScenarioError, match=r"\{marker\} is reserved for writes"):
        parse_scenario(text.replace("(?P<pk>", "(?P<marker>"))


def test_ignored_parts_of_a_page_are_not_searched_for_markers():
    scenario = demo_scenario()
    page = '<ul class="messagelist"><li>The article “chk-r-title1-v1” was changed</li></ul><h1>chk-r-title1-v9</h1>'
    assert scenario.visible(page) == "<h1>chk-r-title1-v9</h1>"
    with pytest.raises(ScenarioError, match=r"ignore\[1\]: not a regular expression"):
        parse_scenario('ignore = ["(unclosed"]\n' + MINIMAL)
    with pytest.raises(
        ScenarioError,
        match=r"ignore: 'x' \(a string\) is wrong; expected a list of regular expressions",
    ):
        parse_scenario('ignore = "x"\n' + MINIMAL)


def test_a_missing_scenario_file_is_one_line(tmp_path):
    with pytest.raises(ScenarioError, match=r"nope.toml: cannot read: No such file"):
        load_scenario(tmp_path / "nope.toml")


def test_templates_replace_placeholders_and_keep_doubled_braces():
    assert placeholders("/a/{slug}/{{x}}") == ["slug"]
    assert render("{{{slug}}}", {"slug": "s"}) == "{s}"
    with pytest.raises(ValueError):
        placeholders("/a/{slug")


def test_a_bad_value_names_its_line():
    text = MINIMAL.replace('form = "#edit"', 'form = "#edit"\nkeeps = "first"')
    line = text.splitlines().index('keeps = "first"') + 1
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(text, "site.toml")
    assert str(raised.value).startswith(f"site.toml:{line}: writes[1].keeps: 'first' (a string)")


# -- the same mistake reads the same in a scenario and in an inventory (strata config) ------


def scenario_problem(text: str) -> str:
    """The error for a scenario ``text``, without its ``file:line:``."""
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(text, "site.toml")
    return re.sub(r"^site\.toml(:\d+)?: ", "", str(raised.value))


def inventory_problem(text: str) -> str:
    """The only error for an inventory ``text``, without its ``file:line:``."""
    with pytest.raises(InventoryError) as raised:
        parse_inventory(text, "inv.toml")
    [line] = str(raised.value).splitlines()
    return re.sub(r"^inv\.toml(:\d+)?: ", "", line)


def test_a_boolean_where_a_whole_number_belongs():
    assert scenario_problem(broken("[objects]", "[objects]\ncount = true")) == (
        "objects.count: true (a boolean) is wrong; expected a whole number from 1 to 2"
    )
    assert inventory_problem(ONE_HOST.replace("port = 20101", "port = 20101\nworkers = true")) == (
        "app_server[1].workers: true (a boolean) is wrong; expected a whole number from 1 to 256"
    )


def test_a_string_where_a_number_belongs():
    assert scenario_problem(broken("[[reads]]", '[traffic]\nwrite_share = "high"\n[[reads]]')) == (
        "traffic.write_share: 'high' (a string) is wrong; expected a number from 0 to 0.5"
    )
    assert inventory_problem(
        ONE_HOST.replace("port = 20101", 'port = 20101\nworkers = "four"')
    ) == (
        "app_server[1].workers: 'four' (a string) is wrong; expected a whole number from 1 to 256"
    )


def test_an_unknown_key_suggests_the_closest_known_one():
    assert scenario_problem(broken('form = "#edit"', 'form = "#edit"\nfield = {}')).startswith(
        "writes[1].field: unknown key; did you mean 'fields'? expected one of: name, user, page,"
    )
    assert inventory_problem(ONE_HOST.replace("port = 20101", "port = 20101\nworker = 4")) == (
        "app_server[1].worker: unknown key; did you mean 'workers'? "
        "expected one of: host, port, kind, workers, timeout"
    )


def test_a_missing_key_says_what_was_expected():
    assert scenario_problem(broken(', password = "pw"', "")) == (
        "users.editor[1].password: missing; expected a non-empty string"
    )
    assert inventory_problem(ONE_HOST.replace('[database]\nhost = "web"', "[database]")) == (
        "database.host: missing; expected a host name from [hosts]"
    )


def test_text_that_is_not_toml_and_a_missing_file_read_the_same(tmp_path):
    broken_toml = 'name = "x"\nprobe = /\n'
    with pytest.raises(ScenarioError) as scenario:
        parse_scenario(broken_toml, "site.toml")
    with pytest.raises(InventoryError) as inventory:
        parse_inventory(broken_toml, "site.toml")
    assert str(scenario.value) == str(inventory.value)
    assert str(scenario.value).startswith("site.toml:2: not valid TOML: ")
    nowhere = tmp_path / "nowhere.toml"
    with pytest.raises(ScenarioError) as scenario:
        load_scenario(nowhere)
    with pytest.raises(InventoryError) as inventory:
        load_inventory(nowhere)
    assert str(scenario.value) == str(inventory.value)
    assert str(scenario.value) == f"{nowhere}: cannot read: No such file or directory"
