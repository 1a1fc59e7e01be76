"""What the multi-host tests share: a stack on hosts, readers per host, HAProxy's counters."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator

import pytest

from strata.httpclient import csrf_token
from strata.stack.haproxy import server_column
from strata.stack.hosts import namespaces_available
from strata.stack.stack import Stack
from tests.helpers import Client, demo_stack


def require_namespaces() -> None:
    """Skip, saying why, where network namespaces cannot be made (not root, no iproute2)."""
    available, reason = namespaces_available()
    if not available:
        pytest.skip(f"{reason}: the multi-host stack runs on loopback addresses instead")


@contextlib.contextmanager
def hosts_stack(**options) -> Iterator[Stack]:
    """The demo as ``strata up --hosts 2`` runs it (2 load balancers, 2 edges, 2 app hosts,
    pgbouncer in front of the primary, a replica)."""
    with demo_stack(**{"hosts": 2, "workers": 2, "pgbouncer": True, **options}) as stack:
        yield stack


def stack_fixture(namespaces: bool = True, **options):
    """A module-scoped ``stack`` fixture: the demo on hosts (:func:`hosts_stack` with
    ``options``), each host a network namespace, or a loopback address when
    ``namespaces`` is False."""
    if not namespaces:
        options["namespaces"] = False

    @pytest.fixture(scope="module")
    def stack():
        if namespaces:
            require_namespaces()
        with hosts_stack(**options) as the_stack:
            yield the_stack

    return stack


def as_sent(stack: Stack) -> dict[str, str]:
    """The headers of a request as the load balancer passes it on (part of the cache key):
    the Host a browser sends to the first load balancer, and the scheme."""
    lb = stack.load_balancer
    return {"Host": f"{lb.host}:{lb.port}", "X-Forwarded-Proto": "http"}


def balancers(stack: Stack) -> list[Client]:
    """A client per load balancer."""
    return [Client(lb.host, lb.port, timeout=10) for lb in stack.load_balancers]


def edges(stack: Stack) -> list[Client]:
    """A client per Varnish node, past the load balancers."""
    return [Client(v.host, v.port, timeout=5) for v in stack.accelerators]


def an_article(client: Client) -> str:
    """The path of an article linked from the front page."""
    return "/" + re.search(r'href="/(articles/[^"#]+/)"', client.get("/").text).group(1)


def post_comment(stack: Stack, path: str, writer: Client | None = None) -> str:
    """Post a comment through the first load balancer; return its words."""
    if writer is None:
        writer = balancers(stack)[0]
    if "sessionid" not in writer.cookies:
        writer.login("reader2")
    token = csrf_token(writer.get(path).text)
    words = f"comment {uuid.uuid4().hex[:10]}"
    posted = writer.post_form(path, {"body": words, "csrfmiddlewaretoken": token})
    assert posted.status == 302, (posted.status, posted.text[:300])
    return words


def x_cache(answer) -> str:
    return answer.getheader("X-Cache") or ""


def requests_per_server(stack: Stack, backend: str) -> dict[str, int]:
    """Requests each server of ``backend`` got, summed over every load balancer."""
    totals: dict[str, int] = {}
    for lb in stack.load_balancers:
        counts = server_column(lb.admin("show stat"), backend, "stot")
        for server, count in counts.items():
            totals[server] = totals.get(server, 0) + int(count or 0)
    return totals


def seconds_until_fresh(
    readers: list[Client], path: str, words: str, headers: dict[str, str], timeout: float = 10.0
) -> list[float]:
    """Read ``path`` through each reader until it shows ``words``; the seconds each took.

    Readers that are not the writer read a streaming replica, which replays a commit
    within milliseconds: a page read before that is served but stored nowhere.
    """
    start = time.monotonic()
    took = []
    for reader in readers:
        while words not in reader.get(path, headers=headers).text:
            if time.monotonic() - start > timeout:
                raise AssertionError(f"{reader.host}:{reader.port} still without {words!r}")
            time.sleep(0.02)
        took.append(round(time.monotonic() - start, 3))
    return took
