"""The whole stack under fire: a hung app server, a database, cache server or accelerator
that goes away, a herd on one cold page, a flood of random URLs.

Each test breaks one real program of a stack of its own (so the shared stack of the other
tests is never disturbed), checks what clients get meanwhile, heals it, and checks that
the site recovers by itself with nothing stale. Requests carry a client timeout far below
HAProxy's ``timeout server`` (35 s): a request left waiting on a hung server fails the
test instead of hanging it.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from strata.conf import default
from strata.httpclient import csrf_token
from strata.stack.probes import line_probe
from strata.stack.varnish import varnish_counters
from strata.tags.changelog import entry_id
from strata.tags.versions import VersionStore
from tests.helpers import Client, demo_stack

pytestmark = pytest.mark.stack

CLIENT_TIMEOUT = 15.0


@pytest.fixture(scope="module")
def stack():
    """A stack of its own: two app servers of two workers, Redis, PostgreSQL, Varnish."""
    with demo_stack() as the_stack:
        yield the_stack


@pytest.fixture(autouse=True)
def everything_running_again(stack):
    """Whatever a test broke is running again before the next one starts."""
    yield
    for program in stack.programs:
        if program.process is not None and program.process.running():
            program.process.kill_group(signal.SIGCONT)
        if not program.running():
            stack.restart(program)
            if program is stack.cache:
                # A worker that saw the cache fail stays away from it this long.
                time.sleep(VersionStore.retry_after + 0.5)
    for app in stack.app_servers:
        wait_until(lambda app=app: stack.load_balancer.server_states("app_pool")[app.name] == "UP")


def wait_until(condition, timeout: float = 20.0, pause: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(pause)
    raise AssertionError(f"still not true after {timeout:.0f} s: {condition}")


def through_lb(stack) -> Client:
    return Client(stack.config.host, stack.config.port, timeout=CLIENT_TIMEOUT)


def past_varnish(stack) -> Client:
    return Client(stack.config.host, stack.config.port_of("pool"), timeout=CLIENT_TIMEOUT)


def header(answer, name: str) -> str:
    return answer.getheader(name) or ""


def an_article(stack, index: int = 0) -> str:
    home = through_lb(stack).get("/")
    slugs = []
    for part in home.text.split('href="/articles/')[1:]:
        slug = part.split("/", 1)[0]
        if slug not in slugs:
            slugs.append(slug)
    return f"/articles/{slugs[index]}/"


def logged_in(stack, reader: str = "reader1") -> Client:
    client = through_lb(stack)
    client.login(reader)
    return client


def post_comment(client: Client, path: str, body: str):
    """Post a comment through the article's own form, as a browser would."""
    token = csrf_token(client.get(path).text)
    return client.post_form(path, {"body": body, "csrfmiddlewaretoken": token})


def test_a_hung_app_server_is_taken_out_and_no_request_waits_for_it(stack):
    hung = stack.app_servers[0]
    hung.process.kill_group(signal.SIGSTOP)
    pool = past_varnish(stack)

    def one(index: int):
        try:
            return pool.get(f"/?hung={index}").status
        except OSError as error:  # the client timeout: a request left waiting
            return f"no answer: {error}"

    with ThreadPoolExecutor(8) as workers:
        answers = []
        for index in range(24):
            answers.append(workers.submit(one, index))
            time.sleep(0.1)
        statuses = [answer.result() for answer in answers]

    assert all(isinstance(status, int) for status in statuses), statuses
    # Only requests the hung server had already accepted may fail (2 workers' worth).
    assert sum(status >= 500 for status in statuses) <= stack.config.workers, statuses
    wait_until(lambda: stack.load_balancer.server_states("app_pool")[hung.name] != "UP")

    hung.process.kill_group(signal.SIGCONT)
    wait_until(lambda: stack.load_balancer.server_states("app_pool")[hung.name] == "UP")


def test_a_killed_app_server_costs_at_most_its_requests_in_flight(stack):
    killed = stack.app_servers[1]
    pool = past_varnish(stack)
    stop = threading.Event()
    statuses: Counter = Counter()

    def load():
        index = 0
        while not stop.is_set() and index < 2000:
            index += 1
            try:
                statuses[pool.get(f"/?killed={index % 50}").status] += 1
            except OSError:
                statuses["no answer"] += 1

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    killed.kill()
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join(CLIENT_TIMEOUT)

    failed = sum(
        count for status, count in statuses.items() if status == "no answer" or status >= 500
    )
    assert statuses[200] > 0
    assert failed <= stack.config.workers * 4, statuses  # in flight: 4 clients at most each


def test_with_the_database_down_cached_pages_are_served_and_the_rest_gets_a_clear_503(stack):
    home, article = "/", an_article(stack, 1)
    lb, pool = through_lb(stack), past_varnish(stack)
    lb.get(home)
    assert header(lb.get(home), "X-Cache") == "HIT"
    pool.get(article)
    assert header(pool.get(article), "X-Strata") == "page-hit"
    app_pids = [app.pid for app in stack.app_servers]
    reader = logged_in(stack)
    token = csrf_token(reader.get(article).text)

    stack.database.stop()
    try:
        assert (lb.get(home).status, header(lb.get(home), "X-Cache")) == (200, "HIT")
        assert (pool.get(article).status, header(pool.get(article), "X-Strata")) == (
            200,
            "page-hit",
        )
        never_cached = lb.get(f"/authors/nobody-{uuid.uuid4().hex[:8]}/")
        assert never_cached.status == 503
        assert header(never_cached, "Retry-After").isdigit()
        assert "Back in a moment" in never_cached.text
        assert "Traceback" not in never_cached.text
        write = reader.post_form(
            article, {"body": "written while the database is down", "csrfmiddlewaretoken": token}
        )
        assert write.status == 503
    finally:
        stack.restart(stack.database)

    fresh_path = f"/authors/nobody-{uuid.uuid4().hex[:8]}/"
    wait_until(lambda: lb.get(fresh_path).status == 404)  # rendered from the database again
    assert [app.pid for app in stack.app_servers] == app_pids  # no app server restarted


def test_with_the_cache_server_down_pages_render_from_the_database_and_nothing_stale_returns(
    stack,
):
    article = an_article(stack, 2)
    lb, pool = through_lb(stack), past_varnish(stack)
    pool.get(article)
    assert header(pool.get(article), "X-Strata") == "page-hit"
    reader = logged_in(stack, "reader2")
    marker = f"while-redis-was-down-{uuid.uuid4().hex[:8]}"

    stack.cache.kill()
    try:
        down = pool.get(article)
        assert down.status == 200
        assert header(down, "X-Strata") == "bypass: cache unavailable"
        posted = post_comment(reader, article, marker)
        assert posted.status == 302, posted.text[:300]
        assert marker in pool.get(article).text
    finally:
        stack.restart(stack.cache)
        time.sleep(VersionStore.retry_after + 0.5)

    assert marker in pool.get(article).text  # the restarted, empty cache has no old copy
    assert marker in lb.get(article).text  # and Varnish was purged (or never had it)


def test_a_flushed_version_store_never_brings_an_old_page_back(stack):
    article = an_article(stack, 3)
    pool = past_varnish(stack)
    # Every worker back on the cache (one that saw it fail waits a moment before retrying).
    wait_until(lambda: header(pool.get(article), "X-Strata") == "page-hit")
    reader = logged_in(stack, "reader3")
    marker = f"after-the-flush-{uuid.uuid4().hex[:8]}"
    assert post_comment(reader, article, marker).status == 302

    assert line_probe(stack.cache.host, stack.cache.port, b"FLUSHALL\r\n", b"+OK")

    assert marker in pool.get(article).text
    assert header(pool.get(article), "X-Strata") in ("page-hit", "page-miss")


def test_with_the_accelerator_down_the_load_balancer_goes_straight_to_the_app_servers(stack):
    article = an_article(stack, 4)
    lb = through_lb(stack)
    lb.get(article)
    reader = logged_in(stack, "reader4")
    # Without the accelerator no ESI fills the form's token hole: take it now.
    token = csrf_token(reader.get(article).text)
    accelerator = stack.accelerators[0]
    marker = f"while-varnish-was-down-{uuid.uuid4().hex[:8]}"

    accelerator.stop()
    try:
        wait_until(lambda: lb.get(article).status == 200)
        direct = lb.get(article)
        assert header(direct, "X-Cache") == ""  # no accelerator on the way
        assert header(direct, "X-Strata") in ("page-hit", "page-miss")
        posted = reader.post_form(article, {"body": marker, "csrfmiddlewaretoken": token})
        assert posted.status == 302
    finally:
        stack.restart(accelerator)

    wait_until(lambda: header(lb.get(article), "X-Cache") in ("MISS", "HIT"))
    assert marker in lb.get(article).text


def bus_settled(stack) -> bool:
    """True when the purger has delivered the whole invalidation log to every node."""
    try:
        client = redis.Redis.from_url(stack.cache.url)
        head = entry_id(client.xinfo_stream(":1:strata:bus:log")["last-generated-id"])
        delivered = client.hgetall(":1:strata:bus:delivered")
    except redis.RedisError:
        return False
    return bool(delivered) and all(entry_id(v) >= head for v in delivered.values())


def backend_requests(stack) -> int:
    """How many requests Varnish has sent to the app servers so far."""
    return varnish_counters(stack.accelerators[0].work_dir, ["backend_req"])["backend_req"]


def test_two_hundred_concurrent_requests_for_a_cold_page_render_it_once(stack):
    path = f"/?herd={uuid.uuid4().hex[:8]}"
    lb = through_lb(stack)
    before = backend_requests(stack)
    barrier = threading.Barrier(200)

    def one(_):
        barrier.wait()
        answer = lb.get(path)
        return answer.status, header(answer, "X-Cache")

    with ThreadPoolExecutor(200) as workers:
        answers = list(workers.map(one, range(200)))

    fetched = backend_requests(stack) - before
    assert Counter(status for status, _ in answers) == {200: 200}
    assert fetched == 1, f"{fetched} fetches from the app servers for one page"


def test_a_flood_of_random_urls_leaves_the_hot_page_cached_and_caches_misses_briefly(stack):
    hot = an_article(stack, 5)
    lb = through_lb(stack)
    # Earlier tests' late purges (retries to a restarted node, second purges, the full
    # purge after Redis came back empty) land before the hot page is cached.
    assert wait_until(lambda: bus_settled(stack)), "the purger never caught up"
    time.sleep(default("PURGE_DELAY") + 0.5)
    lb.get(hot)
    statuses: Counter = Counter()
    for index in range(300):
        noise = uuid.uuid4().hex[:12]
        path = f"/?q={noise}" if index % 2 else f"/articles/{noise}/"
        statuses[lb.get(path).status] += 1
        if index % 50 == 0:
            assert header(lb.get(hot), "X-Cache") == "HIT"
    assert set(statuses) == {200, 404}, statuses

    assert header(lb.get(hot), "X-Cache") == "HIT"
    missing = lb.get(f"/articles/{uuid.uuid4().hex[:12]}/")
    assert missing.status == 404
    assert "s-maxage=30" in header(missing, "Cache-Control")
