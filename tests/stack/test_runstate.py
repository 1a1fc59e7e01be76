"""What `strata up` leaves in its run directory, read back: plain files, no stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from strata.stack.errors import StackError
from strata.stack.runstate import (
    LOCK_FILE,
    NoStack,
    RunState,
    clear_state,
    lock_holder,
    purge_secret,
    read_environment,
    release_lock,
    take_lock,
    write_environment,
)


@pytest.fixture
def gone_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def a_state(run_dir, pid=None) -> RunState:
    return RunState(
        run_dir=run_dir,
        pid=pid or os.getpid(),
        url="http://127.0.0.1:8000/",
        urls=["http://127.0.0.1:8000/"],
        rows=[{"layer": "load balancer", "address": "127.0.0.1:8000, pool 8090", "pid": 7}],
        programs={
            "haproxy": {
                "layer": "load balancer",
                "host": "127.0.0.1",
                "port": 8000,
                "pid": 7,
                "pool_port": 8090,
            },
            "varnish1": {"layer": "accelerator", "host": "127.0.0.1", "port": 8080, "pid": 8},
            "app1": {"layer": "app server", "host": "127.0.0.1", "port": 8101, "pid": 9},
            "app2": {"layer": "app server", "host": "127.0.0.1", "port": 8102, "pid": 10},
        },
        cache_url="redis://127.0.0.1:8379/0",
    )


def test_what_is_written_is_read_back_the_same(tmp_path):
    written = a_state(tmp_path)
    written.write()

    read = RunState.running(tmp_path)

    assert read == written
    assert (read.host, read.port, read.pool) == ("127.0.0.1", 8000, ("127.0.0.1", 8090))
    assert read.named("app server") == ["app1", "app2"]
    assert read.addresses("app server") == [("127.0.0.1", 8101), ("127.0.0.1", 8102)]


def test_the_file_keeps_the_keys_that_tests_and_docs_read(tmp_path):
    a_state(tmp_path).write()

    data = json.loads((tmp_path / "state.json").read_text())

    assert {"pid", "url", "urls", "tls_url", "rows", "programs", "network", "cache_url"} <= set(
        data
    )
    assert "run_dir" not in data


def test_a_directory_without_a_stack_is_no_stack(tmp_path):
    with pytest.raises(NoStack, match=f"^no stack is running for {tmp_path / 'nowhere'}$"):
        RunState.running(tmp_path / "nowhere")


def test_a_state_whose_process_is_gone_is_no_stack_and_says_which_pid(tmp_path, gone_pid):
    a_state(tmp_path, pid=gone_pid).write()

    with pytest.raises(NoStack, match=f"pid {gone_pid}, is gone") as error:
        RunState.running(tmp_path)
    assert not error.value.starting
    assert RunState.recorded(tmp_path).pid == gone_pid  # still readable, for strata down


def test_a_locked_directory_without_a_state_is_still_starting(tmp_path):
    take_lock(tmp_path)

    with pytest.raises(NoStack, match="still starting") as error:
        RunState.running(tmp_path)
    assert error.value.starting and "\n" not in str(error.value)


def test_a_new_strata_up_over_a_killed_ones_state_is_still_starting(tmp_path, gone_pid):
    a_state(tmp_path, pid=gone_pid).write()
    take_lock(tmp_path)

    with pytest.raises(NoStack, match="still starting"):
        RunState.running(tmp_path)


def test_an_unreadable_state_is_no_stack_naming_the_file(tmp_path):
    (tmp_path / "state.json").write_text("{")

    with pytest.raises(NoStack, match=f"cannot read {tmp_path / 'state.json'}"):
        RunState.running(tmp_path)


def test_a_stale_lock_is_no_holder_and_can_be_taken(tmp_path, gone_pid):
    (tmp_path / LOCK_FILE).write_text(f"{gone_pid}\n")
    assert lock_holder(tmp_path) is None

    take_lock(tmp_path)

    assert lock_holder(tmp_path) == os.getpid()
    release_lock(tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_live_lock_of_another_process_refuses_a_second_strata_up(tmp_path):
    (tmp_path / LOCK_FILE).write_text(f"{os.getppid()}\n")

    with pytest.raises(StackError, match="already running"):
        take_lock(tmp_path)


def test_the_stack_is_supervised_when_its_process_holds_the_lock(tmp_path):
    state = a_state(tmp_path)
    assert not state.supervised
    take_lock(tmp_path)
    assert state.supervised


def test_the_environment_is_private_and_missing_means_still_starting(tmp_path):
    with pytest.raises(NoStack, match="still starting"):
        read_environment(tmp_path)

    write_environment(tmp_path, {"directory": "/site", "python": "py", "environment": {}})

    assert read_environment(tmp_path)["directory"] == "/site"
    assert (tmp_path / "environment.json").stat().st_mode & 0o777 == 0o600


def test_the_purge_secret_is_made_once_and_kept(tmp_path):
    first = purge_secret(tmp_path)

    assert first and purge_secret(tmp_path) == first
    assert a_state(tmp_path).secret == first


def test_a_stopped_stack_leaves_no_state(tmp_path):
    a_state(tmp_path).write()
    write_environment(tmp_path, {})

    clear_state(tmp_path)

    with pytest.raises(NoStack, match="no stack is running"):
        RunState.running(tmp_path)
    assert not (tmp_path / "environment.json").exists()
