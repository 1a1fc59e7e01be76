"""The replica rule on real PostgreSQL: a lagging replica's rows are served, never stored.

Run by ``test_on_postgresql.py`` in a pytest of its own, under ``tests.replica_settings``
(a primary and a streaming replica that it started). The replica's lag is made
deterministic: ``recovery_min_apply_delay`` holds every commit back until the test
releases it, and "caught up" means its replay position reached the primary's.
"""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import caches
from django.test import Client

from strata.conf import strata_settings
from strata.querycache.stats import reset_stats, stats
from strata.replicas.middleware import COOKIE
from strata.tags.stores import version_store
from tests.replicas.helpers import set_apply_delay, wait_caught_up

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica1"])

_pg = settings.TEST_REPLICA_PG
PRIMARY = SimpleNamespace(
    name="primary", bindir=Path(_pg["bindir"]), host="127.0.0.1", port=_pg["primary_port"]
)
REPLICA = SimpleNamespace(
    name="replica", bindir=Path(_pg["bindir"]), host="127.0.0.1", port=_pg["replica_port"]
)


def elsewhere(function, *args):
    """Run ``function`` as another client would: in a context the writes do not pin."""
    return contextvars.Context().run(function, *args)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    wait_caught_up(PRIMARY, REPLICA)  # the replica has the test database too
    return django_db_setup


@pytest.fixture
def lagging():
    """Hold the replica's replay back until the test calls the returned ``release``."""
    wait_caught_up(PRIMARY, REPLICA)
    set_apply_delay(REPLICA, "1h")

    def release():
        set_apply_delay(REPLICA, "0")
        wait_caught_up(PRIMARY, REPLICA)

    yield release
    set_apply_delay(REPLICA, "0")


@pytest.fixture
def article(transactional_db):
    from newsroom.models import Article, Author

    def create():
        author = Author.objects.create(name="One", slug="one", bio="")
        return Article.objects.create(
            title="Old title",
            slug="a1",
            author=author,
            body="b1",
            published_at=datetime(2026, 1, 1, tzinfo=UTC),
        )

    found = elsewhere(create)
    wait_caught_up(PRIMARY, REPLICA)
    version_store.cache_clear()
    caches[strata_settings().cache_alias].clear()
    reset_stats()
    return found


def retitle(article, title: str) -> None:
    from newsroom.models import Article

    elsewhere(lambda: Article.objects.filter(pk=article.pk).update(title=title))


def read_title(article) -> tuple[str, str]:
    """The title through the cached ORM, and 'hit', 'miss' or 'miss, not stored'."""
    from newsroom.models import Article

    before = dict(stats)
    title = Article.objects.get(pk=article.pk).title
    if stats["hit"] > before.get("hit", 0):
        return title, "hit"
    assert stats["miss"] > before.get("miss", 0), dict(stats)
    stored = stats["store"] > before.get("store", 0)
    return title, "miss" if stored else "miss, not stored"


def test_reads_go_to_the_replica_and_are_cached_while_it_is_up_to_date(article):
    from newsroom.models import Article

    assert Article.objects.all().db == "replica1"
    assert read_title(article) == ("Old title", "miss")
    assert read_title(article) == ("Old title", "hit")
    retitle(article, "New title")
    wait_caught_up(PRIMARY, REPLICA)
    assert read_title(article) == ("New title", "miss")
    assert read_title(article) == ("New title", "hit")


def test_a_lagging_replica_is_read_but_not_stored_until_it_has_replayed_the_write(article, lagging):
    assert read_title(article) == ("Old title", "miss")
    retitle(article, "New title")
    # Replication lag, not the cache: the replica still has the old row. Its versions are
    # the new ones, so storing it would be a stale hit for everyone later.
    assert read_title(article) == ("Old title", "miss, not stored")
    assert read_title(article) == ("Old title", "miss, not stored")
    assert stats["replica-behind"] == 2
    lagging()  # release: the replica replays the write
    assert read_title(article) == ("New title", "miss")
    assert read_title(article) == ("New title", "hit")


def test_a_page_built_from_a_lagging_replica_is_served_but_never_stored(article, lagging):
    client = Client()
    first = client.get("/articles/a1/")
    assert first.status_code == 200 and b"Old title" in first.content
    assert client.get("/articles/a1/")["X-Strata"] == "page-hit"
    retitle(article, "New title")
    for _ in range(2):
        page = client.get("/articles/a1/")
        assert b"Old title" in page.content  # from the replica: replication lag
        assert page["X-Strata"] != "page-hit"
        assert page["X-Strata"] == "bypass: replica behind the primary"
        assert "private" in page["Cache-Control"]  # kept out of the accelerator too
    lagging()
    page = client.get("/articles/a1/")
    assert b"New title" in page.content and page["X-Strata"] == "page-miss"
    page = client.get("/articles/a1/")
    assert b"New title" in page.content and page["X-Strata"] == "page-hit"


@pytest.fixture
def writer(article):
    """A logged-in client (the replica has its user: logging in happened a while ago)."""
    client = Client()
    elsewhere(lambda: client.force_login(User.objects.create_user("ann", password="pw")))
    wait_caught_up(PRIMARY, REPLICA)
    return client


def test_a_client_that_wrote_reads_its_own_write_from_the_primary(article, writer, lagging):
    from newsroom.models import Article

    assert b"First!" not in Client().get("/articles/a1/").content
    posted = writer.post("/articles/a1/", {"body": "First!"})
    assert posted.status_code == 302
    assert COOKIE in posted.cookies and posted.cookies[COOKIE]["max-age"] == 30
    assert b"First!" in writer.get("/articles/a1/").content  # the replica is still behind

    # In the same context (a script, a worker): a write pins reads to the primary.
    Article.objects.filter(pk=article.pk).update(title="Mine")
    assert Article.objects.all().db == "default"
    assert Article.objects.get(pk=article.pk).title == "Mine"
