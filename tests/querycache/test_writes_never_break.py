"""The cache never breaks a write (``docs/design.md``): statements Strata adds never fail
where the project's own would succeed, a fault in a hook falls back to the database and
a broad invalidation, and whatever the ORM can express is invalidated correctly."""

from __future__ import annotations

import logging
import uuid

from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.models import Count, F

from strata.querycache import reads, writes
from strata.querycache.stats import stats
from strata.tags.stores import version_store
from tests.querycache.conftest import probe


def fresh(read, value_after, write):
    """Warm ``read``, run ``write``, and say whether ``read`` then shows ``value_after``."""
    read()
    assert probe(read) == "hit"
    write()
    return read() == value_after


def test_a_data_migration_through_historical_models_runs_with_the_cache_on(transactional_db):
    # 0002 writes through the 0001 models (no Ticket.code yet): creates, updates, saves,
    # deletes of a multi-table child. Run it again from zero on this database.
    call_command("migrate", "ormapp", "zero", verbosity=0)
    call_command("migrate", "ormapp", verbosity=0)
    from tests.ormapp.models import Ticket

    assert Ticket.objects.count() == 0  # what 0002 made, it removed


def test_writes_through_a_historical_model_invalidate_the_whole_table(transactional_db):
    from tests.ormapp.models import Ticket

    ticket = Ticket.objects.create(code="A")
    state = MigrationLoader(connection).project_state(("ormapp", "0002_close_old_tickets"))
    Historical = state.apps.get_model("ormapp", "Ticket")
    by_code = lambda: list(Ticket.objects.filter(code="A").values_list("status", flat=True))  # noqa: E731
    assert fresh(
        by_code, ["closed"], lambda: Historical.objects.filter(pk=ticket.pk).update(status="closed")
    )
    assert fresh(by_code, [], lambda: Historical.objects.filter(pk=ticket.pk).delete())


def test_an_unmanaged_model_with_fewer_fields_on_the_same_table(transactional_db):
    from tests.ormapp.models import Ticket, TicketView

    ticket = Ticket.objects.create(code="B")
    by_code = lambda: list(Ticket.objects.filter(code="B").values_list("status", flat=True))  # noqa: E731
    assert fresh(
        by_code, ["seen"], lambda: TicketView.objects.filter(pk=ticket.pk).update(status="seen")
    )
    assert fresh(by_code, [], lambda: TicketView.objects.filter(ref=ticket.ref).delete())


def test_a_uuid_written_as_a_string_invalidates_reads_by_the_uuid(transactional_db):
    from tests.ormapp.models import Ticket

    ref = uuid.uuid4()
    by_ref = lambda: Ticket.objects.filter(ref=ref).count()  # noqa: E731
    assert fresh(by_ref, 1, lambda: Ticket.objects.create(ref=str(ref)))


def test_composite_primary_keys_are_created_updated_and_deleted(transactional_db):
    from tests.ormapp.models import Tenancy

    Tenancy.objects.create(building=1, unit=1, tenant="ann")
    Tenancy.objects.create(building=1, unit=2, tenant="bob")
    anns = lambda: list(Tenancy.objects.filter(tenant="ann").values_list("unit", flat=True))  # noqa: E731
    bobs = lambda: list(Tenancy.objects.filter(tenant="bob").values_list("unit", flat=True))  # noqa: E731
    assert fresh(anns, [1, 2], lambda: Tenancy.objects.filter(unit=2).update(tenant="ann"))
    assert bobs() == []
    row = Tenancy.objects.get(pk=(1, 1))
    row.tenant = "cy"
    assert fresh(anns, [2], row.save)
    assert fresh(anns, [], lambda: Tenancy.objects.get(pk=(1, 2)).delete())
    Tenancy.objects.bulk_create([Tenancy(building=2, unit=1, tenant="ann")])
    assert anns() == [1]


def test_an_update_of_an_aggregated_queryset_runs_and_invalidates(newsroom):
    from newsroom.models import Article

    n = newsroom
    title = lambda: Article.objects.get(pk=n.a1.pk).title  # noqa: E731
    commented = Article.objects.annotate(n=Count("comments")).filter(n__gt=1)
    assert fresh(title, "most discussed", lambda: commented.update(title="most discussed"))


def test_a_tree_moved_with_f_expressions_and_raw_sql(transactional_db):
    from tests.ormapp.models import Node

    Node.objects.create(path="0001", depth=1, numchild=1, name="root")
    Node.objects.create(path="00010001", depth=2, name="child")
    Node.objects.create(path="0002", depth=1, name="other")

    def under_first():
        return sorted(Node.objects.filter(path__startswith="0001").values_list("name", flat=True))

    child = lambda: Node.objects.get(name="child").depth  # noqa: E731

    def move():
        # django-treebeard's move: F() on the moved subtree, then raw SQL on the paths.
        Node.objects.filter(path__startswith="0001").update(depth=F("depth") + 1)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE ormapp_node SET path = %s || SUBSTR(path, 5) WHERE path LIKE %s",
                ["0003", "0001%"],
            )

    child()
    assert fresh(under_first, [], move)
    assert child() == 3


def test_generic_relations_are_invalidated_by_object(transactional_db):
    from tests.ormapp.models import Note, Place

    park, pub = Place.objects.create(name="Park"), Place.objects.create(name="Pub")
    Note.objects.create(target=park, text="green")
    notes_of_park = lambda: sorted(park.notes.values_list("text", flat=True))  # noqa: E731
    notes_of_park()
    Note.objects.create(target=pub, text="loud")
    assert probe(notes_of_park) == "hit"
    assert fresh(
        notes_of_park, ["green", "quiet"], lambda: Note.objects.create(target=park, text="quiet")
    )
    assert fresh(lambda: Note.objects.count(), 1, park.delete)  # the relation cascades


def test_a_fault_while_planning_a_write_runs_the_write_and_invalidates_the_table(
    newsroom, monkeypatch, caplog
):
    from newsroom.models import Article

    n = newsroom

    def broken(*args):
        raise RuntimeError("a bug in Strata")

    monkeypatch.setattr(writes, "_update_where", broken)
    title = lambda: Article.objects.get(pk=n.a2.pk).title  # noqa: E731
    with caplog.at_level(logging.ERROR, logger="strata.querycache"):
        assert fresh(
            title,
            "written anyway",
            lambda: Article.objects.filter(pk=n.a2.pk).update(title="written anyway"),
        )
        Article.objects.filter(pk=n.a3.pk).update(title="again")
    assert stats["fault"] == 2
    assert len([r for r in caplog.records if "a bug in Strata" in (r.exc_text or "")]) == 1


def test_a_fault_while_looking_a_read_up_reads_from_the_database(newsroom, monkeypatch):
    from newsroom.models import Article

    def broken(*args):
        raise RuntimeError("a bug in Strata")

    monkeypatch.setattr(reads, "_shape_of", broken)
    assert Article.objects.get(pk=newsroom.a1.pk).title == "A1"
    assert stats["bypass:a fault in Strata"] == 1


def test_a_database_cache_is_refused_by_a_check_and_never_recurses(newsroom, settings):
    from django.core import checks

    from newsroom.models import Article

    settings.CACHES = {
        **settings.CACHES,
        "db": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "strata_db_cache",
        },
    }
    settings.STRATA = {**settings.STRATA, "CACHE": "db"}
    assert "strata.E039" in {m.id for m in checks.run_checks()}
    call_command("createcachetable", "strata_db_cache", verbosity=0)
    version_store.cache_clear()
    n = newsroom
    title = lambda: Article.objects.get(pk=n.a1.pk).title  # noqa: E731
    assert fresh(
        title,
        "via the database cache",
        lambda: Article.objects.filter(pk=n.a1.pk).update(title="via the database cache"),
    )


def test_a_table_no_registered_model_owns_is_never_cached(transactional_db):
    from django.db.migrations.recorder import MigrationRecorder

    recorder = MigrationRecorder(connection)  # its model lives in a private registry
    before = set(recorder.applied_migrations())
    recorder.record_applied("ormapp", "9999_made_up")
    assert set(recorder.applied_migrations()) - before == {("ormapp", "9999_made_up")}
    recorder.record_unapplied("ormapp", "9999_made_up")
    assert set(recorder.applied_migrations()) == before
    assert stats["bypass:a table no registered model owns"] >= 3


def test_names_that_need_quoting_are_read_and_written(transactional_db):
    from tests.ormapp.models import Oddity

    odd = Oddity.objects.create(code="a b", label="one")
    labels = lambda: list(Oddity.objects.filter(code="a b").values_list("label", flat=True))  # noqa: E731
    assert fresh(labels, ["two"], lambda: Oddity.objects.filter(pk=odd.pk).update(label="two"))
    odd.refresh_from_db()
    odd.code = "c d"
    assert fresh(labels, [], odd.save)
    assert fresh(labels, ["three"], lambda: Oddity.objects.create(code="a b", label="three"))
    assert fresh(labels, [], lambda: Oddity.objects.filter(code="a b").delete())


def test_a_local_memory_cache_with_debug_on_works(newsroom, settings):
    from django.core import checks

    from newsroom.models import Article

    settings.DEBUG = True
    settings.CACHES = {
        **settings.CACHES,
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    settings.STRATA = {**settings.STRATA, "CACHE": "local"}
    version_store.cache_clear()
    assert "strata.W011" in {m.id for m in checks.run_checks()}  # one process only
    n = newsroom
    title = lambda: Article.objects.get(pk=n.a1.pk).title  # noqa: E731
    assert fresh(title, "local", lambda: Article.objects.filter(pk=n.a1.pk).update(title="local"))
