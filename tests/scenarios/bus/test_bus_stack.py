"""Every write reaches the edge, whoever made it (issue 17), on a real stack: PostgreSQL,
Redis, two app servers, two Varnish nodes, the purger, HAProxy.

The writer is ``manage.py edit_article`` given only the database and the cache settings
(:func:`tests.scenarios.bus.helpers.writer_env`): its changes reach Varnish through the
invalidation log and ``strata_purger`` alone. Each test edits its own article, whose page
both nodes hold first, and reads it through the load balancer. A supervisor (the one
``strata up`` runs) restarts whatever dies, as in production.

A read is *stale beyond the window* when it started more than :data:`WINDOW` seconds after
the commit of a title it does not show (``strata check``'s rule and default window).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from strata.check.vcl import Varnishadm, refuse_purges
from strata.edge.fence import EPOCH_HEADER, NODE_HEADER, READY_PATH
from strata.stack.probes import http_get
from strata.stack.supervisor import Supervisor
from strata.tags.changelog import ZERO, entry_id
from tests.helpers import demo_stack
from tests.scenarios.bus.helpers import (
    Readers,
    articles,
    cache_on_every_node,
    committed_edit,
    edit_title,
    node_answer,
    poll,
    stack_bus,
    stale_ages,
    stale_reads,
    through_lb,
    title_of,
    wait_fresh,
    writer_env,
)

pytestmark = pytest.mark.stack

#: Seconds after a commit within which every read must show it (``strata check --window``).
WINDOW = 2.5

#: Seconds within which the first fresh read must come in the plain cases.
PURGE_WINDOW = 2.0

#: Seconds after a commit by which a node that nobody purges is out of rotation:
#: ``BUS['FENCE_AFTER']`` (0.5 s), then HAProxy's first failing check (``inter 1s``: up to a
#: second late) and the second 250 ms later (``fastinter``): within the purge window.
FENCED_WITHIN = WINDOW

HOST = socket.gethostname()


@pytest.fixture(scope="module")
def stack():
    """A stack of its own, kept running by the supervisor of ``strata up``."""
    with demo_stack(accelerators=2) as the_stack:
        supervisor = Supervisor(the_stack)
        stop = threading.Event()

        def supervise() -> None:
            while not stop.wait(0.2):
                supervisor.check()

        watcher = threading.Thread(target=supervise, daemon=True)
        watcher.start()
        try:
            yield the_stack
        finally:
            stop.set()
            watcher.join(30)


@pytest.fixture(scope="module")
def pages(stack):
    """``(pk, path)`` of the demo's newest articles; each test takes its own."""
    return iter(articles(stack))


@pytest.fixture
def article(stack, pages):
    """An article of this test alone, its page in both nodes' caches: ``(pk, path, title)``."""
    pk, path = next(pages)
    cache_on_every_node(stack, path)
    return pk, path, title_of(through_lb(stack).get(path).text)


@pytest.fixture(autouse=True)
def everything_running_again(stack):
    """Whatever a test stopped runs again, every purger stands, both nodes are in rotation."""
    yield
    for program in stack.programs:
        if program.process is not None and program.process.running():
            program.process.kill_group(signal.SIGCONT)
    assert poll(lambda: all(p.running() for p in stack.programs), 30)
    assert poll(lambda: set(node_states(stack).values()) == {"UP"}, 30), node_states(stack)


def node_states(stack) -> dict[str, str]:
    found = stack.load_balancer.server_states("accelerators")
    return {name: state for name, state in found.items() if name.startswith("varnish")}


def new_title(label: str) -> str:
    return f"bus-{label}-{uuid.uuid4().hex[:8]}"


def assert_fresh_from_now_on(stack, path: str, title: str, reads: int = 8) -> None:
    client = through_lb(stack)
    shown = [title_of(client.get(path).text) for _ in range(reads)]
    assert shown == [title] * reads, shown


def holder_of(program) -> str:
    return f"{HOST}:{program.pid}"


# -- a: a writer that knows only the database and the cache -------------------------------
def test_a_command_given_only_the_database_and_cache_reaches_the_edge(stack, article):
    pk, path, before = article
    assert "STRATA_ACCELERATORS" not in writer_env(stack)
    title = new_title("command")

    committed = committed_edit(stack, pk, title)

    took = wait_fresh(through_lb(stack), path, title, committed, PURGE_WINDOW)
    assert took is not None, f"still {before!r} {PURGE_WINDOW} s after the commit"
    assert_fresh_from_now_on(stack, path, title)
    for node in stack.accelerators:  # purged on both nodes, not only on the one asked
        assert node_answer(stack, node, path)[1] == title


# -- b: a writer killed right after its commit --------------------------------------------
def test_a_writer_killed_right_after_its_commit_still_reaches_the_edge(stack, article):
    pk, path, before = article
    title = new_title("killed")

    committed = committed_edit(stack, pk, title, kill_after_commit=True)

    took = wait_fresh(through_lb(stack), path, title, committed, PURGE_WINDOW)
    assert took is not None, f"still {before!r} {PURGE_WINDOW} s after the commit"
    assert_fresh_from_now_on(stack, path, title)


# -- c: the purger killed, then stopped, under a stream of writes -------------------------
def test_a_killed_or_stopped_purger_leaves_nothing_stale_beyond_the_window(stack, article):
    pk, path, before = article
    purger = stack.purgers[0]
    writes: list[tuple[float, str]] = []

    def write(label: str) -> None:
        title = new_title(label)
        writes.append((committed_edit(stack, pk, title), title))

    with Readers(stack, path, count=2) as readers:
        write("before")
        old_pid = purger.pid
        purger.kill()  # SIGKILL; the supervisor starts a new one
        write("killed")
        write("killed")
        assert poll(lambda: purger.running() and purger.pid != old_pid, 20)
        write("restarted")
        time.sleep(WINDOW)
        killed_writes = len(writes)

        purger.process.kill_group(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            write("stopped")
            time.sleep(4.0)  # the fence takes both nodes out: reads go to the app servers
            write("stopped")
            time.sleep(WINDOW)
        finally:
            purger.process.kill_group(signal.SIGCONT)
        resumed = time.monotonic()
        write("resumed")
        time.sleep(WINDOW + 0.5)

    reads = readers.reads
    stale = stale_reads(reads, writes, before)
    killed = [age for age, index in stale if index < killed_writes]
    paused = [age for age, index in stale if index >= killed_writes]
    print(
        f"{len(writes)} writes, {len(reads)} reads; purger killed: {len(killed)} stale, "
        f"worst {max(killed or [0]):.3f} s; purger stopped: {len(paused)} stale, worst "
        f"{max(paused or [0]):.3f} s"
    )
    assert len(reads) > 200 and readers.errors == 0, (len(reads), readers.errors)
    assert {r.status for r in reads} == {200}
    # Killed: the supervisor's new purger delivers within the window.
    assert max(killed or [0]) <= WINDOW, sorted(killed)[-5:]
    # Stopped: nothing delivers; the fence answers 503 once a change is FENCE_AFTER old
    # and HAProxy takes a node out after two failed checks (inter 1 s, fastinter 250 ms).
    assert max(paused or [0]) <= FENCED_WITHIN, sorted(paused)[-5:]
    # While it was stopped the nodes were fenced: reads came from the app servers.
    assert any(not r.x_cache for r in reads if stopped + 3.5 < r.start < resumed), "never fenced"
    assert title_of(through_lb(stack).get(path).text) == writes[-1][1]


# -- d: two purgers ---------------------------------------------------------------------
def purge_requests(node, tag: str) -> int:
    """PURGE requests ``node`` has received whose ``xkey-purge`` names ``tag``."""
    dump = subprocess.run(
        [
            "varnishlog",
            "-n",
            str(node.work_dir),
            "-d",
            "-g",
            "request",
            "-q",
            'ReqMethod eq "PURGE"',
            "-i",
            "ReqHeader",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    count = 0
    for line in dump.splitlines():
        _, _, value = line.partition("xkey-purge:")
        if value and tag in value.split():
            count += 1
    return count


@pytest.fixture
def second_purger(stack):
    """A second ``strata_purger`` with the app servers' environment, stopped after."""
    project = stack.config.project
    log_path = Path(stack.run_dir) / "logs" / f"purger-b-{uuid.uuid4().hex[:6]}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "strata_purger"],
            cwd=project.directory,
            env=project.environment(STRATA_SERVER_NAME="purger-b"),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def test_two_purgers_deliver_each_write_once_and_the_standby_takes_over(
    stack, article, second_purger
):
    pk, path, _ = article
    process, log_path = second_purger
    bus = stack_bus(stack)
    purger = stack.purgers[0]
    standby = f"{HOST}:{process.pid}"
    assert poll(lambda: standby in bus.status()["purgers"], 20), log_path.read_text()
    status = bus.status()
    assert status["lease"]["holder"] == holder_of(purger), status
    assert set(status["purgers"]) >= {holder_of(purger), standby}
    head = entry_id(status["head"]) if status["head"] else ZERO
    batches = status["stats"]["batches"]
    tag = f"newsroom_article.id={pk}"
    purged = {node.name: purge_requests(node, tag) for node in stack.accelerators}

    titles = [new_title("twice") for _ in range(3)]
    for title in titles:
        committed = committed_edit(stack, pk, title)
        assert wait_fresh(through_lb(stack), path, title, committed, PURGE_WINDOW) is not None
    time.sleep(2.0 + 1.0)  # PURGE_DELAY: the second purges go out too

    entries = [e for e in bus.read(head, 1000) if tag in e.tags]
    status = bus.status()
    assert len(entries) == len(titles), entries
    assert status["lease"]["holder"] == holder_of(purger)  # never changed hands
    assert status["stats"]["batches"] - batches == len(titles), status["stats"]
    for node in stack.accelerators:
        # One first purge and one second purge per write, from one purger: two
        # purgers delivering would send each at least twice.
        sent = purge_requests(node, tag) - purged[node.name]
        assert len(titles) <= sent <= 2 * len(titles), (node.name, sent)
    assert ": delivering (" not in log_path.read_text()  # it stood by throughout

    # The holder dies: the standby of the same host takes over at once. (The supervisor
    # is held off meanwhile: its restart of the holder would race the standby for it.)
    hold = stack.hold_path(purger)
    hold.parent.mkdir(parents=True, exist_ok=True)
    hold.write_text("bus test: the standby takes over\n")
    try:
        purger.kill()
        assert poll(lambda: bus.status()["lease"]["holder"] == standby, 5), bus.status()
        title = new_title("taken-over")
        committed = committed_edit(stack, pk, title)
        assert wait_fresh(through_lb(stack), path, title, committed, PURGE_WINDOW) is not None
        assert_fresh_from_now_on(stack, path, title)
        assert process.poll() is None
        assert ": delivering (" in log_path.read_text()
    finally:
        hold.unlink()


# -- e: Redis restarted empty -------------------------------------------------------------
def test_after_redis_restarts_empty_every_node_is_banned_whole_and_nothing_stale_is_served(
    stack, article, pages
):
    pk, path, before = article
    _, bystander = next(pages)  # cached, never edited: only a ban empties it
    cache_on_every_node(stack, bystander)
    bus = stack_bus(stack)
    identity = bus.status()["identity"]
    hold = stack.hold_path(stack.cache)
    hold.parent.mkdir(parents=True, exist_ok=True)
    title = new_title("redis-down")

    hold.write_text("bus test: Redis stays down until the write is made\n")
    try:
        stack.cache.kill()
        # The writer cannot log its change: its commit stands, its bump fails.
        down = edit_title(stack, pk, title)
        assert down.returncode == 0 and down.committed is not None, down
    finally:
        hold.unlink()
    assert poll(lambda: stack.cache.running(), 20)
    back = time.monotonic()

    took = wait_fresh(through_lb(stack), path, title, back, 5.0)
    assert took is not None, "the write made while Redis was down never showed"
    assert poll(lambda: bus.status()["stats"]["full_purges"] >= len(stack.accelerators), 10)
    status = bus.status()
    assert status["identity"] != identity  # a new log: its records were lost
    for node in stack.accelerators:  # every node banned whole, not just purged
        # Not a HIT: fetched again (a MISS, or a PASS while the app servers still keep
        # away from the restarted Redis and answer uncacheable pages).
        assert node_answer(stack, node, bystander)[0] in ("MISS", "PASS"), node.name
        assert node_answer(stack, node, path)[1] == title, node.name
    assert_fresh_from_now_on(stack, path, title)
    print(f"fresh {took:.3f} s after Redis was back; {status['stats']}")


# -- f: an accelerator partitioned from the purger, and healed ----------------------------
def readiness(stack, node) -> int:
    """What the app answers to ``node``'s readiness check (asked directly, as the node
    asks it, for a cache born long ago)."""
    app = stack.app_servers[0]
    headers = {NODE_HEADER: f"{node.host}:{node.port}", EPOCH_HEADER: "1.0"}
    return http_get(app.host, app.port, READY_PATH, headers=headers).status


def test_a_node_that_misses_purges_is_fenced_and_rejoins_only_once_caught_up(stack, article):
    pk, path, before = article
    node = stack.accelerators[1]
    node_key = f"{node.host}:{node.port}"
    bus = stack_bus(stack)
    admin = Varnishadm(node.work_dir)
    original = admin.active()
    refusing = Path(stack.run_dir) / f"purge-fail-{uuid.uuid4().hex[:8]}.vcl"
    refusing.write_text(refuse_purges(admin.source(original)))
    name = f"purge_fail_{uuid.uuid4().hex[:8]}"
    admin.load(name, refusing)
    title = new_title("partitioned")
    writes: list[tuple[float, str]] = []
    samples: list[tuple[float, bool, bool]] = []  # (when, caught up, in rotation)

    with Readers(stack, path, count=2) as readers:
        admin.use(name)
        try:
            committed = committed_edit(stack, pk, title)
            writes.append((committed, title))
            position = entry_id(bus.status()["head"])
            assert poll(lambda: readiness(stack, node) == 503, 3)
            fenced_at = time.monotonic()
            assert poll(lambda: node_states(stack)["varnish2"].startswith("DOWN"), 10)
            out_at = time.monotonic()
            assert node_answer(stack, node, path)[1] == before  # it still holds the old page
            time.sleep(2.0)
        finally:
            admin.use(original)
        healed = time.monotonic()
        deadline = healed + 20
        while time.monotonic() < deadline:
            delivered = entry_id(bus.status()["nodes"][node_key]["delivered"])
            up = node_states(stack)["varnish2"] == "UP"
            samples.append((time.monotonic(), delivered >= position, up))
            if up:
                break
            time.sleep(0.05)
        time.sleep(1.0)  # some reads with the node back in rotation
    admin.discard(name)

    assert samples and samples[-1][2], f"node 2 never came back: {node_states(stack)}"
    assert all(caught for _, caught, up in samples if up), samples[-5:]
    caught_at = next(at for at, caught, _ in samples if caught)
    ages = stale_ages(readers.reads, writes, before)
    late = [
        r for r in readers.reads if r.start > out_at and r.title != title and r.start > committed
    ]
    print(
        f"fenced {fenced_at - committed:.2f} s after the commit, out of rotation "
        f"{out_at - committed:.2f} s after it; caught up {caught_at - healed:.2f} s after "
        f"the heal, back {samples[-1][0] - healed:.2f} s after it; "
        f"{len(ages)} stale reads before it was out, worst {max(ages or [0]):.2f} s"
    )
    assert not late, f"{len(late)} stale reads after the node was out: {late[:3]}"
    assert readers.errors == 0
    assert node_answer(stack, node, path)[1] == title
    assert readiness(stack, node) == 200
