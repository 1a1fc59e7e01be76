"""What the query cache knows of the schema: condition columns, database-level cascades."""

from __future__ import annotations

import django
import pytest
from django.db import models
from django.test.utils import isolate_apps

from strata.querycache.schema import db_cascade_tables, table_info


def test_condition_columns_are_keys_foreign_keys_and_unique_or_indexed_fields():
    assert table_info("newsroom_comment").condition_columns == ("id", "article_id", "user_id")
    assert set(table_info("newsroom_article").condition_columns) == {"id", "slug", "author_id"}
    # A through table of a many-to-many relation is pinned by both sides.
    assert set(table_info("newsroom_article_tags").condition_columns) == {
        "id",
        "article_id",
        "tag_id",
    }


@pytest.mark.skipif(django.VERSION < (6, 1), reason="DB_CASCADE arrived in Django 6.1")
@isolate_apps("newsroom")
def test_database_level_cascades_are_followed_transitively():
    from django.db.models.deletion import DB_CASCADE, DB_SET_NULL

    class Parent(models.Model):
        class Meta:
            app_label = "newsroom"

    class Child(models.Model):
        parent = models.ForeignKey(Parent, on_delete=DB_CASCADE)

        class Meta:
            app_label = "newsroom"

    class GrandChild(models.Model):
        child = models.ForeignKey(Child, on_delete=DB_SET_NULL, null=True)

        class Meta:
            app_label = "newsroom"

    class Collected(models.Model):
        parent = models.ForeignKey(Parent, on_delete=models.CASCADE)  # Django deletes these

        class Meta:
            app_label = "newsroom"

    assert db_cascade_tables(Parent) == {Child._meta.db_table, GrandChild._meta.db_table}
    assert db_cascade_tables(Collected) == frozenset()
