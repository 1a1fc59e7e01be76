"""Reading a person's TOML file: each mistake is one line with the file, the line and the key."""

from __future__ import annotations

import pytest

from strata.tomlfile import Document, TomlFileError, key_lines, read_text

TEXT = """\
name = "site"

[server]
port = 8000
debug = "yes"

[[worker]]
threads = 4

[[worker]]
threads = "many"
"""


def test_key_lines_find_keys_tables_and_array_elements():
    lines = key_lines(TEXT)
    assert lines[("name",)] == 1
    assert lines[("server",)] == 3
    assert lines[("server", "debug")] == 5
    assert lines[("worker", 0)] == 7
    assert lines[("worker", 1, "threads")] == 11


def test_problems_are_collected_and_raised_in_file_order():
    document = Document(TEXT, "app.toml")
    root = document.root(["name", "server", "worker"])
    workers = root.tables("worker", ["threads"], required=True)
    assert workers[1].integer("threads", 1, 64, 1) == 1  # the default, the problem recorded
    server = root.section("server", ["port", "debug"])
    assert server is not None
    assert server.boolean("debug", False) is False
    with pytest.raises(TomlFileError) as raised:
        document.finish()
    assert str(raised.value).splitlines() == [
        "app.toml:5: server.debug: 'yes' (a string) is wrong; expected true or false",
        "app.toml:11: worker[2].threads: 'many' (a string) is wrong; "
        "expected a whole number from 1 to 64",
    ]


def test_stop_at_first_raises_the_first_problem_alone():
    document = Document(TEXT, "app.toml", stop_at_first=True)
    with pytest.raises(TomlFileError) as raised:
        document.root(["name", "servers", "worker"])
    assert str(raised.value) == (
        "app.toml:3: server: unknown key; did you mean 'servers'? "
        "expected one of: name, servers, worker"
    )


def test_a_missing_key_and_a_missing_table_say_what_is_expected():
    document = Document("[server]\n", "app.toml")
    root = document.root(["server", "worker"])
    server = root.section("server", ["port"])
    assert server is not None and server.port("port") is None
    assert root.tables("worker", ["threads"], required=True) == []
    with pytest.raises(TomlFileError) as raised:
        document.finish()
    assert str(raised.value).splitlines() == [
        "app.toml: missing [[worker]]: at least one is needed",
        "app.toml:1: server.port: missing; expected a port from 1 to 65535",
    ]


def test_a_boolean_is_no_number_and_a_number_is_no_string():
    document = Document("a = true\nb = 3\n", "app.toml")
    root = document.root(["a", "b"])
    root.number("a", 0, 1)
    root.string("b")
    with pytest.raises(TomlFileError) as raised:
        document.finish()
    assert str(raised.value).splitlines() == [
        "app.toml:1: a: true (a boolean) is wrong; expected a number from 0 to 1",
        "app.toml:2: b: 3 (a number) is wrong; expected a non-empty string",
    ]


def test_text_that_is_not_toml_names_its_line():
    with pytest.raises(TomlFileError) as raised:
        Document('name = "site"\nport = \n', "app.toml")
    assert str(raised.value).startswith("app.toml:2: not valid TOML: ")
    assert "\n" not in str(raised.value)


def test_a_file_that_cannot_be_read_is_one_line(tmp_path):
    with pytest.raises(TomlFileError) as raised:
        read_text(tmp_path / "none.toml")
    assert str(raised.value) == f"{tmp_path / 'none.toml'}: cannot read: No such file or directory"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(TomlFileError, match=r"latin.toml: not UTF-8 text$"):
        read_text(latin)
