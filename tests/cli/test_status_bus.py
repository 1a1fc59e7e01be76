"""The "bus" section of `strata status`: the log, who delivers, each accelerator's lag.
(``tests/cli/test_up.py`` reads it from a real stack.)"""

from __future__ import annotations

from rich.console import Console

from strata.cli.up import bus_table


def shown(section) -> str:
    console = Console(width=200, record=True)
    console.print(section)
    return console.export_text()


def test_a_stack_without_a_log_says_the_app_processes_purge():
    assert "bus: off" in shown(bus_table(None))


def test_a_bus_that_cannot_be_read_is_one_line_with_the_reason():
    text = shown(bus_table({"error": "cannot read the bus: [Errno 111] refused"}))
    assert text.strip() == "bus: cannot read the bus: [Errno 111] refused"


def test_the_section_names_the_holder_and_each_node_behind_with_its_lag():
    text = shown(
        bus_table(
            {
                "length": 7,
                "head": "2-0",
                "head_age": 0.5,
                "lease": {"holder": "app1:99", "ttl": 2.0},
                "purgers": ["app1:99", "app2:7"],
                "nodes": {
                    "127.0.0.1:6081": {"delivered": "2-0", "behind": 0, "lag": None},
                    "[::1]:6082": {"delivered": None, "behind": 4, "lag": 3.25},
                },
                "stats": {"failures": 2, "retries": 5, "full_purges": 1, "last_failure": "x"},
            }
        )
    )
    assert "Invalidation bus: 7 entries, head 0.5 s old" in text
    assert "delivering: app1:99 (lease 2.0 s)" in text
    assert "delivering: app1:99 (lease 2.0 s); standing by: app2:7" in text
    assert "2 failures, 5 retries, 1 full purges" in text
    assert "[::1]:6082" in text and "3.2 s" in text
    assert "last failure: x" in text


def test_no_lease_holder_is_said_plainly():
    text = shown(bus_table({"length": 0, "head_age": None, "lease": None, "nodes": {}}))
    assert "delivering: none" in text
