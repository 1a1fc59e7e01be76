"""Multi-table inheritance end to end: a CMS's page types, cached and written.

A child's rows live in two tables (the parent's and its own, joined by the parent link).
Each write changes the tables it touches, with the columns that table really has; each
read depends on every table it joins.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import F

from tests.querycache.conftest import probe


@pytest.fixture
def places(transactional_db):
    from tests.ormapp.models import Bar, Place, Restaurant

    created = {
        "luigi": Restaurant.objects.create(name="Luigi", city="Rome", cuisine="pizza"),
        "sushi": Restaurant.objects.create(name="Sushi", city="Oslo", cuisine="sushi"),
        "pub": Bar.objects.create(name="Pub", city="Oslo"),
        "park": Place.objects.create(name="Park", city="Rome"),
    }
    from django.core.cache import caches

    from strata.conf import strata_settings
    from strata.querycache.stats import reset_stats

    caches[strata_settings().cache_alias].clear()
    reset_stats()
    return created


def warm(*reads):
    for read in reads:
        read()
        assert probe(read) == "hit"


def test_saving_a_child_writes_both_tables_and_every_read_of_it_sees_the_change(places):
    from tests.ormapp.models import Place, Restaurant

    luigi = places["luigi"]
    by_parent = lambda: Place.objects.get(pk=luigi.pk).name  # noqa: E731
    by_child = lambda: Restaurant.objects.get(pk=luigi.pk).cuisine  # noqa: E731
    warm(by_parent, by_child)

    luigi.name = "Luigi's"
    luigi.cuisine = "pasta"
    luigi.save()  # an UPDATE of ormapp_place and one of ormapp_restaurant

    assert by_parent() == "Luigi's"
    assert by_child() == "pasta"


def test_a_write_to_one_child_keeps_reads_of_other_rows_cached(places):
    from tests.ormapp.models import Bar, Restaurant

    pub = lambda: Bar.objects.get(pk=places["pub"].pk).name  # noqa: E731
    sushi = lambda: Restaurant.objects.get(pk=places["sushi"].pk).cuisine  # noqa: E731
    warm(pub, sushi)
    Restaurant.objects.filter(pk=places["luigi"].pk).update(cuisine="pasta")
    assert probe(pub) == "hit"
    assert probe(sushi) == "hit"


def test_updating_a_parent_field_through_the_child_queryset_reaches_the_parent(places):
    from tests.ormapp.models import Place, Restaurant

    in_oslo = lambda: sorted(Place.objects.filter(city="Oslo").values_list("name", flat=True))  # noqa: E731
    restaurants = lambda: sorted(Restaurant.objects.values_list("name", flat=True))  # noqa: E731
    warm(in_oslo, restaurants)

    # Django runs two statements: one per table, the parent's by primary keys.
    changed = Restaurant.objects.filter(cuisine="sushi").update(name="Sushi Bar", rating=5)

    assert changed == 1
    assert in_oslo() == ["Pub", "Sushi Bar"]
    assert restaurants() == ["Luigi", "Sushi Bar"]


def test_deleting_a_child_removes_it_from_the_parents_reads(places):
    from tests.ormapp.models import Place, Restaurant

    names = lambda: sorted(Place.objects.values_list("name", flat=True))  # noqa: E731
    count = lambda: Restaurant.objects.count()  # noqa: E731
    warm(names, count)
    places["luigi"].delete()  # deletes the child row, then the parent row
    assert names() == ["Park", "Pub", "Sushi"]
    assert count() == 1


def test_polymorphic_reads_parent_queryset_then_child_lookups(places):
    from tests.ormapp.models import Place

    def kinds():
        found = {}
        for place in Place.objects.order_by("name"):
            if hasattr(place, "restaurant"):
                found[place.name] = place.restaurant.cuisine
            elif hasattr(place, "bar"):
                found[place.name] = f"bar:{place.bar.happy_hour}"
            else:
                found[place.name] = "place"
        return found

    first = kinds()
    assert first == {"Luigi": "pizza", "Park": "place", "Pub": "bar:False", "Sushi": "sushi"}
    assert kinds() == first
    from tests.ormapp.models import Bar

    Bar.objects.filter(pk=places["pub"].pk).update(happy_hour=True)
    assert kinds()["Pub"] == "bar:True"


def test_select_and_prefetch_related_across_the_parent_link(places):
    from tests.ormapp.models import Place, Restaurant

    def joined():
        return [
            (p.name, p.restaurant.cuisine)
            for p in Place.objects.select_related("restaurant")
            .filter(restaurant__isnull=False)
            .order_by("name")
        ]

    def prefetched():
        return [
            (r.name, r.place_ptr.city)
            for r in Restaurant.objects.prefetch_related("place_ptr").order_by("name")
        ]

    warm(joined, prefetched)
    Place.objects.filter(pk=places["sushi"].pk).update(city="Bergen")
    Restaurant.objects.filter(pk=places["luigi"].pk).update(rating=F("rating") + 1, cuisine="pasta")
    assert joined() == [("Luigi", "pasta"), ("Sushi", "sushi")]
    assert prefetched() == [("Luigi", "Rome"), ("Sushi", "Bergen")]


def test_a_child_update_reads_no_column_its_table_lacks(places):
    """The bug that made every page save of a CMS fail: parent columns read from the child."""
    from tests.ormapp.models import Restaurant

    executed = []

    def watch(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    luigi = Restaurant.objects.get(pk=places["luigi"].pk)
    luigi.rating = 3
    with connection.execute_wrapper(watch):
        luigi.save()
    statements = [sql for sql in executed if sql not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT")]
    # What Django itself runs, nothing more: one UPDATE per table.
    assert [sql.split()[1] for sql in statements] == ['"ormapp_place"', '"ormapp_restaurant"']
    assert Restaurant.objects.get(pk=luigi.pk).rating == 3
    if connection.vendor == "postgresql":
        # On PostgreSQL each UPDATE reports its old and new values itself.
        assert all("RETURNING" in sql for sql in statements)
