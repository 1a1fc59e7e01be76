"""Several Varnish nodes behind one load balancer (`strata up --accelerators N`).

A write purges every node, in parallel; how the load balancer spreads pages over the
nodes is a choice: each node caches everything (round robin), or each page lives on one
node (its URI picks the node, consistent hashing).
"""

from __future__ import annotations

import re
import uuid

import pytest

from strata.httpclient import csrf_token
from tests.helpers import Client, demo_stack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module", params=["roundrobin", "uri-consistent"])
def stack(request):
    with demo_stack(app_servers=1, accelerators=2, balance=request.param) as the_stack:
        yield the_stack


def an_article(client: Client) -> str:
    return "/" + re.search(r'href="/(articles/[^"#]+/)"', client.get("/").text).group(1)


def x_cache(answer) -> str:
    return answer.getheader("X-Cache") or ""


def test_the_balance_decides_whether_every_node_or_one_node_keeps_a_page(stack):
    public = Client(stack.config.host, stack.config.port)
    path = f"/?balance={uuid.uuid4().hex[:8]}"

    answers = [x_cache(public.get(path)) for _ in range(4)]

    if stack.config.balance == "roundrobin":
        assert answers == ["MISS", "MISS", "HIT", "HIT"]  # one copy per node
    else:
        assert answers == ["MISS", "HIT", "HIT", "HIT"]  # one node holds the page


def test_a_write_purges_the_page_from_every_node(stack):
    public = Client(stack.config.host, stack.config.port)
    nodes = [Client(v.host, v.port) for v in stack.accelerators]
    article = an_article(public)
    for node in nodes:
        node.get(article)
        again = node.get(article)
        assert x_cache(again) == "HIT", again.getheaders()
    reader = Client(stack.config.host, stack.config.port)
    reader.login("reader2")
    token = csrf_token(reader.get(article).text)
    words = f"On every node {uuid.uuid4().hex[:8]}"

    posted = reader.post_form(article, {"body": words, "csrfmiddlewaretoken": token})

    assert posted.status == 302
    for node in nodes:
        fresh = node.get(article)
        assert words in fresh.text
        assert x_cache(fresh) == "MISS"
