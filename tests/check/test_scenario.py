"""Scenario files: the built-in one, and one clear line for every mistake."""

from __future__ import annotations

import pytest

from strata.check.scenario import (
    ScenarioError,
    demo_scenario,
    load_scenario,
    parse_scenario,
    placeholders,
    render,
)

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


def test_the_demo_scenario_reads_the_newsroom_and_writes_comments_and_titles():
    scenario = demo_scenario()
    assert [w.name for w in scenario.writes] == ["comment", "title"]
    assert [w.keeps for w in scenario.writes] == ["all", "last"]
    assert scenario.variables == ("slug", "author", "pk")
    assert scenario.keys(2) == ["comment1", "comment2", "title1", "title2"]
    assert scenario.roles() == ["reader", "editor"]
    assert scenario.write_share == 0.05
    assert scenario.write_named("title").verify == "/articles/{slug}/"


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
            "writes[0].fields: no field contains the {marker} placeholder",
        ),
        (
            broken('path = "/posts/{slug}/"', 'path = "/posts/{slugg}/"'),
            "reads[0].path: unknown placeholder {slugg} (known here: {slug}, {pk})",
        ),
        (
            broken('page = "/edit/{pk}/"', 'page = "edit/{pk}/"'),
            "writes[0].page: 'edit/{pk}/' must be a path starting with /",
        ),
        (
            broken('form = "#edit"', 'form = "form#edit"'),
            "writes[0].form: 'form#edit' is not a form selector",
        ),
        (broken('name = "title"', 'name = "title2"'), "a write's name is 1-20 lower-case letters"),
        (
            broken('user = "editor"', 'user = "reader"'),
            "writes[0].user: no users with the role 'reader'",
        ),
        (
            broken('shows_on = ["/posts/{slug}/"]', 'shows_on = ["/posts/{slug}/"]\nkeep = "all"'),
            "writes[0]: unknown setting 'keep'",
        ),
        (
            broken(
                'shows_on = ["/posts/{slug}/"]', 'shows_on = ["/posts/{slug}/"]\nkeeps = "first"'
            ),
            "writes[0].keeps: 'first'",
        ),
        (broken('shows_on = ["/posts/{slug}/"]', ""), "writes[0]: needs shows_on (or verify)"),
        (broken('shows_on = ["/posts/{slug}/"]', 'shows_on = ["/"]'), "names no object"),
        (broken("[objects]", "[objects]\nfind = []"), "give either find = [...] steps or a list"),
        (
            broken('{ username = "ed", password = "pw" }', '{ username = "ed" }'),
            "users.editor[0]: 'password' is required",
        ),
        (
            broken("[[reads]]", "[traffic]\nwrite_share = 0.9\n\n[[reads]]"),
            "traffic.write_share: 0.9 is not between 0 and 0.5",
        ),
        (
            broken(
                'fields = { title = "Post {n} {marker}" }',
                'fields = { title = "Post {n} {marker" }',
            ),
            "a lone '{'",
        ),
        (MINIMAL.replace("[[writes]]", "[[writez]]"), "unknown setting 'writez'"),
    ],
)
def test_every_mistake_is_one_line_naming_the_file_and_the_entry(text, message):
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(text, "site.toml")
    text = str(raised.value)
    assert text.startswith("site.toml: ")
    assert message in text
    assert "\n" not in text.strip() or "TOML" in text


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
    with pytest.raises(ScenarioError, match=r"objects.find\[1\].path: unknown placeholder \{pk\}"):
        parse_scenario(text.replace('path = "/p/{slug}/"', 'path = "/p/{pk}/"'))
    with pytest.raises(
        ScenarioError, match=r"objects.find\[1\].pattern: \{slug\} is already found"
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
    with pytest.raises(ScenarioError, match=r"ignore\[0\]: not a regular expression"):
        parse_scenario('ignore = ["(unclosed"]\n' + MINIMAL)
    with pytest.raises(ScenarioError, match=r"ignore: must be a list of regular expressions"):
        parse_scenario('ignore = "x"\n' + MINIMAL)


def test_a_missing_scenario_file_is_one_line(tmp_path):
    with pytest.raises(ScenarioError, match=r"cannot read the scenario .*nope.toml: No such file"):
        load_scenario(tmp_path / "nope.toml")


def test_templates_replace_placeholders_and_keep_doubled_braces():
    assert placeholders("/a/{slug}/{{x}}") == ["slug"]
    assert render("{{{slug}}}", {"slug": "s"}) == "{s}"
    with pytest.raises(ValueError):
        placeholders("/a/{slug")
