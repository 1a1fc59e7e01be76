"""A cache server that is down or hangs costs a miss and a warning, never an error page."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from strata.env import cache_from_url
from strata.querycache.stats import stats


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server():
    """Accepts connections and never answers: a cache server that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    for connection in accepted:
        connection.close()
    server.close()


def use_cache(settings, url):
    settings.CACHES = {**settings.CACHES, "default": cache_from_url(url)}


def test_reads_and_writes_work_while_the_cache_server_is_down(newsroom, settings, caplog):
    from newsroom.models import Comment

    n = newsroom
    use_cache(settings, f"redis://127.0.0.1:{closed_port()}/0")
    with caplog.at_level(logging.WARNING, logger="strata"):
        assert Comment.objects.filter(article=n.a1).count() == 2
        Comment.objects.create(article=n.a1, user=n.ann, body="while down")
        assert Comment.objects.filter(article=n.a1).count() == 3
    assert stats["hit"] == 0 and stats["error"] >= 1
    assert "unavailable" in caplog.text
    assert "could not change the versions" in caplog.text


def test_a_hanging_cache_server_is_given_up_on_not_waited_for_every_query(
    newsroom, settings, silent_server
):
    from newsroom.models import Article

    port, accepted = silent_server
    use_cache(settings, f"redis://127.0.0.1:{port}/0")
    for _ in range(20):
        assert Article.objects.get(slug="a2").title == "A2"
    # One attempt timed out; the other reads went straight to the database.
    assert len(accepted) <= 2
    assert stats["error"] == 20 and stats["hit"] == 0
