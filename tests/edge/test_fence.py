"""A Varnish node that missed purges is fresh again before the load balancer sends it
traffic (``strata.edge.fence``), on the real stack: HAProxy, two Varnish nodes, an app
server, Redis and PostgreSQL.

Node 2 is cut off (a VCL that answers 503 to everything, purges and health checks
alike: the cache stays), a comment is posted, and node 2 is let back: its readiness
check goes to the app, which answers 503 while the invalidation log holds a change not
delivered to that node (``strata_purger`` retries it), so the node stays out of rotation
until the retry lands, and no request through the load balancer ever gets the page from
before the comment. On Memcached, which keeps no log, the app processes' own debts fence
the node instead.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis

from strata.check.vcl import Varnishadm
from strata.edge.fence import EPOCH_HEADER, NODE_HEADER, READY_PATH, node_id
from strata.httpclient import csrf_token
from strata.stack.haproxy import server_column
from strata.stack.probes import http_get
from tests.edge.helpers import poll
from tests.helpers import Client, demo_stack

pytestmark = pytest.mark.stack

CUT_OFF = 'return (synth(503, "cut off"));'


@pytest.fixture(scope="module")
def stack():
    with demo_stack(app_servers=1, accelerators=2) as the_stack:
        yield the_stack


def states(stack) -> dict[str, str]:
    """The accelerators' states in HAProxy (the backup path left out)."""
    found = stack.load_balancer.server_states("accelerators")
    return {name: state for name, state in found.items() if name.startswith("varnish")}


def is_up(stack, name: str) -> bool:
    return states(stack).get(name) == "UP"


def is_down(stack, name: str) -> bool:
    return states(stack).get(name, "").startswith("DOWN")


def sessions(stack, name: str) -> int:
    """How many requests HAProxy has sent to server ``name`` (``stot``)."""
    counts = server_column(stack.load_balancer.admin("show stat"), "accelerators", "stot")
    assert name in counts, f"no server {name} in HAProxy's stats"
    return int(counts[name])


def readiness(stack, node, born: float) -> tuple[int, str]:
    """What the app answers to ``node``'s readiness check (asked directly), for a node
    whose cache was ``born`` then."""
    app = stack.app_servers[0]
    headers = {NODE_HEADER: f"{node.host}:{node.port}", EPOCH_HEADER: repr(born)}
    answer = http_get(app.host, app.port, READY_PATH, headers=headers)
    return answer.status, answer.headers.get("x-strata-fence", "")


@contextlib.contextmanager
def cut_off(stack, node):
    """``node`` answers 503 to everything (purges, checks, pages) and keeps its cache."""
    admin = Varnishadm(node.work_dir)
    original = admin.active()
    source = admin.source(original)
    at = re.search(r"^sub vcl_recv \{", source, re.M).end()
    path = stack.run_dir / f"cut-off-{uuid.uuid4().hex[:8]}.vcl"
    path.write_text(f"{source[:at]}\n    {CUT_OFF}\n{source[at:]}")
    name = f"cut_off_{uuid.uuid4().hex[:8]}"
    admin.load(name, path)
    admin.use(name)
    try:
        yield
    finally:
        admin.use(original)
        admin.discard(name)


def an_article(client: Client) -> str:
    return "/" + re.search(r'href="/(articles/[^"#]+/)"', client.get("/").text).group(1)


def test_a_node_that_missed_a_purge_rejoins_only_once_it_is_fresh(stack):
    public = Client(stack.config.host, stack.config.port)
    node1, node2 = stack.accelerators
    article = an_article(public)
    reader = Client(stack.config.host, stack.config.port)
    reader.login("reader3")
    token = csrf_token(reader.get(article).text)
    # Logging in changed reader3's row, which the page may show: let its second purge
    # (PURGE_DELAY, 2 s) go by before the nodes keep the page.
    time.sleep(2.5)
    # Both nodes keep the page as the load balancer asks for it (round robin).
    as_lb = {"Host": f"{stack.config.host}:{stack.config.port}", "X-Forwarded-Proto": "http"}
    for _ in range(4):
        public.get(article)
    for node in (node1, node2):
        assert (
            Client(node.host, node.port).get(article, headers=as_lb).getheader("X-Cache") == "HIT"
        )
    words = f"While node 2 was away {uuid.uuid4().hex[:8]}"

    before = time.time()  # both nodes' caches are older than this

    with cut_off(stack, node2):
        assert poll(lambda: is_down(stack, "varnish2"), timeout=15), states(stack)
        posted = reader.post_form(article, {"body": words, "csrfmiddlewaretoken": token})
        assert posted.status == 302
        assert poll(lambda: readiness(stack, node2, before)[0] == 503)
        # Let back just after a retry failed (at about 0.1, 0.3, 0.7, 1.5, 3.1 and 6.3 s):
        # the next one is 5 s away, long after the two good checks (1 s apart) that would
        # bring the node back without the fence.
        time.sleep(6.6)
    assert readiness(stack, node1, before) == (200, "clear")
    # Node 2 is back with the page from before the comment (its purge comes later).
    assert words not in Client(node2.host, node2.port).get(article, headers=as_lb).text

    served = sessions(stack, "varnish2")
    answers: list[tuple[int, bool, str]] = []
    up_since = None
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        answer = public.get(article)
        answers.append((answer.status, words in answer.text, answer.getheader("X-Cache")))
        if up_since is None and is_up(stack, "varnish2"):
            up_since = len(answers)
        if up_since is not None and len(answers) - up_since >= 40:
            break
        time.sleep(0.01)

    assert up_since is not None, f"node 2 never came back: {states(stack)}"
    stale = [each for each in answers if not each[1]]
    assert not stale, f"{len(stale)} of {len(answers)} answers were stale: {stale[:5]}"
    assert {status for status, _, _ in answers} == {200}
    assert sessions(stack, "varnish2") > served  # node 2 did serve some of them
    assert words in Client(node2.host, node2.port).get(article, headers=as_lb).text
    assert readiness(stack, node2, before) == (200, "clear")


@pytest.fixture(scope="module")
def memcached_stack():
    with demo_stack(app_servers=1, accelerators=2, cache="memcached") as the_stack:
        yield the_stack


def test_without_a_log_a_debt_of_a_process_that_died_fences_the_node_until_it_expires(
    memcached_stack,
):
    stack = memcached_stack
    node2 = stack.accelerators[1]
    project = stack.config.project
    code = (
        "import os, signal\n"
        "from strata.edge.fence import fence\n"
        f"fence().owe({node_id(f'http://{node2.host}:{node2.port}')!r}, 3)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert poll(lambda: is_up(stack, "varnish2"), timeout=15), states(stack)
    before = time.time()

    died = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", code],
        cwd=project.directory,
        env=project.environment(),
        capture_output=True,
        timeout=60,
    )

    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-500:]
    assert readiness(stack, node2, before) == (503, "owed")
    assert poll(lambda: is_down(stack, "varnish2"), timeout=15), states(stack)
    assert poll(lambda: is_up(stack, "varnish2"), timeout=20), states(stack)
    assert readiness(stack, node2, before) == (200, "clear")


def test_with_the_bus_a_node_behind_the_log_is_fenced_whoever_wrote(stack):
    """A change logged by a process that knows no accelerator (and died at once) fences
    a node the purger cannot reach, until the purger delivered it."""
    node2 = stack.accelerators[1]
    project = stack.config.project
    env = {
        name: value
        for name, value in project.environment().items()
        if not name.startswith("STRATA_")
    }
    code = (
        "import os, signal\n"
        "from strata.api import invalidate_tags\n"
        "invalidate_tags('fence-test')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert poll(lambda: is_up(stack, "varnish2"), timeout=15), states(stack)
    before = time.time()
    with cut_off(stack, node2):
        died = subprocess.run(
            [sys.executable, "-m", "django", "shell", "-c", code],
            cwd=project.directory,
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-500:]
        assert poll(lambda: readiness(stack, node2, before) == (503, "owed"), timeout=5)
        assert readiness(stack, stack.accelerators[0], before) == (200, "clear")
    assert poll(lambda: readiness(stack, node2, before) == (200, "clear"), timeout=15)
    assert poll(lambda: is_up(stack, "varnish2"), timeout=20), states(stack)


def test_readiness_is_answered_only_for_the_load_balancer_and_never_cached(stack):
    node = stack.accelerators[0]
    through_lb = http_get(stack.config.host, stack.config.port, READY_PATH)
    spoofed = http_get(node.host, node.port, READY_PATH, headers={NODE_HEADER: "10.9.9.9:1"})
    twice = http_get(node.host, node.port, READY_PATH)

    assert through_lb.status == 404
    assert spoofed.status == 200
    assert spoofed.headers.get("x-strata-fence") == "clear"  # the node named itself
    assert twice.headers.get("x-cache") == "PASS"
    assert "no-store" in twice.headers.get("cache-control", "")


def test_with_the_cache_server_down_every_node_stays_in_rotation(stack):
    # Fail open: the app cannot tell whether a node owes purges; fencing them all would
    # send every request to app servers that have no cache either.
    node2 = stack.accelerators[1]
    assert poll(lambda: is_up(stack, "varnish2"), timeout=15), states(stack)
    stack.cache.stop()
    try:
        assert readiness(stack, node2, time.time()) == (200, "unknown")
        # Several checks run meanwhile (one a second): none takes a node out.
        end = time.monotonic() + 3
        while time.monotonic() < end:
            assert set(states(stack).values()) == {"UP"}, states(stack)
            time.sleep(0.2)
    finally:
        stack.restart(stack.cache)
    # Redis came back empty: the purger empties every node once (the log that could say
    # what they missed is gone) before the next test fills them.
    assert poll(lambda: nodes_with_positions(stack) == len(stack.accelerators), timeout=15)


def nodes_with_positions(stack) -> int:
    """How many accelerators the purger has recorded a delivered position for."""
    try:
        return redis.Redis.from_url(stack.cache.url).hlen(":1:strata:bus:delivered")
    except redis.RedisError:
        return 0


def test_with_every_app_server_down_the_nodes_still_serve_what_they_hold(stack):
    # No node is ready (its probes of the app pool fail), and the load balancer sends
    # the traffic to a second backend that needs them alive only: pages come from the
    # cache (and from grace once expired) instead of the dead pool.
    public = Client(stack.config.host, stack.config.port)
    # As the load balancer sends it (the scheme is part of the cache key).
    host = {"Host": f"{stack.config.host}:{stack.config.port}", "X-Forwarded-Proto": "http"}
    for accelerator in stack.accelerators:  # a copy on each node
        reader = Client(accelerator.host, accelerator.port)
        assert poll(lambda r=reader: r.get("/", headers=host).getheader("X-Cache") == "HIT", 10)
    node = stack.accelerators[0]
    app = stack.app_servers[0]
    app.stop()
    try:
        assert poll(lambda: all(is_down(stack, n) for n in states(stack)), timeout=15)
        pool = stack.load_balancer.server_states
        assert poll(lambda: all(s.startswith("DOWN") for s in pool("app_pool").values()), 15)
        answer = public.get("/")
        ready = http_get(node.host, node.port, READY_PATH)
    finally:
        stack.restart(app)
    assert poll(lambda: set(states(stack).values()) == {"UP"}, timeout=15), states(stack)

    assert answer.status == 200
    assert answer.getheader("X-Cache") == "HIT"
    assert ready.status == 503
