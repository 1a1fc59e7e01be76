"""``X-Strata`` belongs to the response that carries it, also when Varnish answers.

Varnish keeps a shared page with the headers of the response that filled it, the app's
word for that one request included (``page-miss``, ``page-hit``). A hit is another
client's request: it says ``edge-hit`` (``edge-stale`` past the copy's lifetime, while it
is refreshed), never the word of the request that filled the copy. A personal answer is
remembered as a pass (hit-for-miss), so each later request gets an answer, and a word,
of its own. The origin's ``X-Strata`` names its fetch, as its body does.
"""

from __future__ import annotations

import time
import uuid

import pytest

from strata.stack.probes import http_get
from tests.edge.helpers import HOST, LOOPBACK, poll, running_edge

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def edge():
    with running_edge() as running:
        yield running


def unique_path(ttl: int = 300) -> str:
    return f"/x{uuid.uuid4().hex[:10]}/page?ttl={ttl}"


def answer(edge, path: str) -> tuple[str, str, str]:
    """``X-Cache``, ``X-Strata`` and the fetch named by the body, through Varnish."""
    got = http_get(LOOPBACK, edge.port, path, headers={"Host": HOST})
    assert got.status == 200, got.body[:200]
    fetch = got.body.decode().rsplit(" fetch ", 1)[1]
    return got.headers.get("x-cache", ""), got.headers.get("x-strata", ""), f"fetch {fetch}"


def test_a_hit_says_edge_hit_never_the_word_of_the_request_that_filled_the_copy(edge):
    path = unique_path()
    assert answer(edge, path) == ("MISS", "fetch 1", "fetch 1")
    for _ in range(2):
        assert answer(edge, path) == ("HIT", "edge-hit", "fetch 1")


def test_a_copy_served_past_its_lifetime_while_it_refreshes_says_edge_stale(edge):
    path = unique_path(ttl=1)
    assert answer(edge, path) == ("MISS", "fetch 1", "fetch 1")
    time.sleep(1.5)  # past its lifetime, within the refresh grace

    assert answer(edge, path) == ("HIT", "edge-stale", "fetch 1")
    assert poll(lambda: answer(edge, path) == ("HIT", "edge-hit", "fetch 2"), timeout=5)


def test_a_personal_answer_is_a_pass_and_its_word_reaches_nobody_else(edge):
    path = unique_path()
    edge.origin.personal.add(path)
    assert answer(edge, path) == ("PASS", "fetch 1", "fetch 1")
    assert answer(edge, path) == ("PASS", "fetch 2", "fetch 2")  # its own fetch and word

    edge.origin.personal.discard(path)
    assert answer(edge, path) == ("MISS", "fetch 3", "fetch 3")  # replaces the pass
    assert answer(edge, path) == ("HIT", "edge-hit", "fetch 3")
