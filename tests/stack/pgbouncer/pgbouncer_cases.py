"""The cached ORM and pages through pgbouncer in transaction mode, on real PostgreSQL.

Run by ``test_through_pgbouncer.py`` in a pytest of its own, under
``tests.pgbouncer_settings``: ``default`` is pgbouncer (``?pool_mode=transaction``, so
server-side cursors are off), ``with_cursors`` the same pgbouncer with them on. The pool
holds two server connections handed out in turn, so one Django connection's consecutive
transactions alternate between them; the first case proves it, the others rely on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import psycopg
import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import DatabaseError, connection, connections, transaction
from django.test import Client

from strata.conf import strata_settings
from strata.querycache.stats import reset_stats, stats
from strata.tags.stores import version_store

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

POOL_SIZE = settings.TEST_PGBOUNCER_POOL_SIZE


def _fill_pool() -> None:
    """Open every server connection of the pool: ``POOL_SIZE`` clients in a transaction at once."""
    db = settings.DATABASES["default"]
    clients = [
        psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], connect_timeout=5
        )
        for _ in range(POOL_SIZE)
    ]
    try:
        for client in clients:
            client.execute("SELECT 1")  # BEGIN: this client holds a server connection now
    finally:
        for client in clients:
            client.rollback()  # a server connection left mid-transaction would be closed
            client.close()


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    """The database pgbouncer serves, migrated through pgbouncer (no test database:
    pgbouncer's idle server connections would keep Django from dropping it)."""
    with django_db_blocker.unblock():
        call_command("migrate", "--noinput", verbosity=0)
    _fill_pool()


@pytest.fixture(autouse=True)
def fresh_cache():
    version_store.cache_clear()
    caches[strata_settings().cache_alias].clear()
    reset_stats()


def backend_pids(alias: str = "default", statements: int = 6) -> list[int]:
    """The server process that ran each of ``statements`` consecutive autocommit statements."""
    with connections[alias].cursor() as cursor:
        pids = []
        for _ in range(statements):
            cursor.execute("SELECT pg_backend_pid()")
            pids.append(cursor.fetchone()[0])
    return pids


def make_article(slug: str = "a1", title: str = "Old title"):
    from newsroom.models import Article, Author

    author = Author.objects.create(name="One", slug=f"author-{slug}", bio="")
    return Article.objects.create(
        title=title,
        slug=slug,
        author=author,
        body="Body",
        published_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def read_title(pk: int) -> tuple[str, str]:
    """The title through the cached ORM, and whether the query cache hit."""
    from newsroom.models import Article

    before = stats["hit"]
    title = Article.objects.get(pk=pk).title
    return title, "hit" if stats["hit"] > before else "miss"


# The pool: transactions of one connection land on different server connections


def test_one_django_connection_runs_consecutive_statements_on_every_server_connection():
    assert connection.settings_dict["PORT"] != "" and not connection.in_atomic_block
    pids = backend_pids()
    assert len(set(pids)) == POOL_SIZE, pids
    assert all(a != b for a, b in zip(pids, pids[1:], strict=False)), pids  # in turn
    with transaction.atomic():  # a transaction keeps its server connection throughout
        assert len(set(backend_pids(statements=4))) == 1


def test_a_set_outside_a_transaction_stays_behind_on_one_server_connection():
    """Session state does not follow the client: why Django must keep none."""
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = '1234kB'")
        seen = []
        for _ in range(2 * POOL_SIZE):
            cursor.execute("SHOW work_mem")
            seen.append(cursor.fetchone()[0])
        for _ in range(POOL_SIZE):
            cursor.execute("RESET work_mem")
    assert "1234kB" in seen and len(set(seen)) == 2, seen


def test_the_time_zone_django_sets_follows_the_client_because_pgbouncer_tracks_it():
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Tokyo'")
        seen = []
        for _ in range(2 * POOL_SIZE):
            cursor.execute("SHOW TimeZone")
            seen.append(cursor.fetchone()[0])
        cursor.execute("SET TIME ZONE 'UTC'")
    assert seen == ["Asia/Tokyo"] * (2 * POOL_SIZE)


# The query cache


def test_reads_hit_and_a_write_bumps_so_the_next_read_is_fresh():
    article = make_article()
    assert read_title(article.pk) == ("Old title", "miss")
    assert read_title(article.pk) == ("Old title", "hit")
    from newsroom.models import Article

    Article.objects.filter(pk=article.pk).update(title="New title")
    assert read_title(article.pk) == ("New title", "miss")
    assert read_title(article.pk) == ("New title", "hit")


def test_a_write_in_a_transaction_invalidates_after_its_commit():
    from newsroom.models import Article

    article = make_article()
    assert read_title(article.pk) == ("Old title", "miss")
    with transaction.atomic():
        Article.objects.filter(pk=article.pk).update(title="Inside")
        Article.objects.filter(pk=article.pk).update(title="Committed")
    assert read_title(article.pk) == ("Committed", "miss")
    assert read_title(article.pk) == ("Committed", "hit")
    Article.objects.filter(pk=article.pk).delete()
    assert not Article.objects.filter(pk=article.pk).exists()


# QuerySet.iterator()


def test_iterator_reads_every_row_with_server_side_cursors_off():
    from newsroom.models import Author

    Author.objects.bulk_create(
        Author(name=f"Author {i}", slug=f"iter-{i}", bio="") for i in range(25)
    )
    names = [a.name for a in Author.objects.order_by("slug").iterator(chunk_size=4)]
    assert len(names) == 25 and names[0] == "Author 0"


@pytest.mark.django_db(transaction=True, databases=["default", "with_cursors"])
def test_iterator_with_server_side_cursors_on_fails_behind_transaction_pooling():
    """Documented failure: the cursor is declared on one server connection and fetched
    from on another, which has never heard of it."""
    from newsroom.models import Author

    Author.objects.bulk_create(
        Author(name=f"Author {i}", slug=f"iter-{i}", bio="") for i in range(25)
    )
    rows = Author.objects.using("with_cursors").order_by("slug").iterator(chunk_size=4)
    missing = r'(portal|cursor) "_django_curs_\w+" does not exist'
    try:
        # DECLARE ran on one server connection, psycopg's next message on the other; even
        # Django's clean-up (CLOSE) fails, with psycopg's own error, on a third turn.
        with pytest.raises((DatabaseError, psycopg.errors.InvalidCursorName), match=missing):
            list(rows)
    finally:
        connections["with_cursors"].close()
    # The same rows through "default" (server-side cursors off) read fine.
    assert Author.objects.order_by("slug").iterator(chunk_size=4).__next__().name == "Author 0"


def test_the_system_check_flags_the_alias_with_server_side_cursors_on():
    found = [m for m in run_checks() if m.id == "strata.W032"]
    assert [m.msg.split("]")[0] for m in found] == ["DATABASES['with_cursors'"]


# The demo's pages


def seed() -> None:
    call_command(
        "seed_newsroom",
        stdout=StringIO(),
        articles=12,
        comments=40,
        authors=4,
        tags=4,
        readers=2,
    )


def test_the_demo_pages_render_and_a_retitled_article_is_fresh_on_its_page():
    from newsroom.models import Article, Author, Tag

    seed()
    client = Client()
    article = Article.objects.order_by("-published_at").first()
    for path in (
        "/",
        f"/articles/{article.slug}/",
        f"/tags/{Tag.objects.first().slug}/",
        f"/authors/{Author.objects.first().slug}/",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert page["X-Strata"] == "page-miss", path
        assert client.get(path)["X-Strata"] == "page-hit", path
    Article.objects.filter(pk=article.pk).update(title="Retitled through pgbouncer")
    for path in ("/", f"/articles/{article.slug}/"):
        page = client.get(path)
        assert page["X-Strata"] == "page-miss", path
        assert b"Retitled through pgbouncer" in page.content, path


def test_a_reader_posts_a_comment_and_everyone_sees_it_on_the_next_request(settings):
    from django.contrib.auth import get_user_model

    from newsroom.models import Article

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    seed()
    article = Article.objects.order_by("-published_at").first()
    path = f"/articles/{article.slug}/"
    anonymous = Client()
    assert anonymous.get(path).status_code == 200
    assert anonymous.get(path)["X-Strata"] == "page-hit"
    reader = Client()
    reader.force_login(get_user_model().objects.get(username="reader1"))
    posted = reader.post(path, {"body": "Pooled and fresh"})
    assert posted.status_code == 302
    page = anonymous.get(path)
    assert page["X-Strata"] == "page-miss" and b"Pooled and fresh" in page.content
