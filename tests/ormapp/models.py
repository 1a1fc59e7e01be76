"""Model shapes of real projects: what the query cache must get right beyond the demo.

* ``Place`` → ``Restaurant``/``Bar``: multi-table inheritance (a CMS's page types);
* ``Note``: a generic relation (tags, comments, revisions of any model);
* ``Node``: a materialized-path tree moved with raw SQL and ``F()`` (django-treebeard);
* ``Tenancy``: a composite primary key (Django 5.2+);
* ``Oddity``: a table and a column whose names need quoting;
* ``Ticket``: a UUID condition column and a column added by a later migration, with
  ``TicketView``, an unmanaged second model on the same table that declares fewer fields.
"""

from __future__ import annotations

import uuid

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models


class Place(models.Model):
    """The parent of multi-table inheritance."""

    name = models.CharField(max_length=50, db_index=True)
    city = models.CharField(max_length=50, db_index=True, default="")
    notes = GenericRelation("Note")


class Restaurant(Place):
    """A child: its own table joined to ``Place`` by ``place_ptr_id``."""

    cuisine = models.CharField(max_length=30, db_index=True, default="")
    rating = models.IntegerField(default=0)


class Bar(Place):
    """Another child of the same parent."""

    happy_hour = models.BooleanField(default=False, db_index=True)


class Note(models.Model):
    """A note on any object (a generic foreign key)."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField(db_index=True)
    target = GenericForeignKey("content_type", "object_id")
    text = models.CharField(max_length=100)


class Node(models.Model):
    """A node of a materialized-path tree (``0001``, ``00010003``...)."""

    path = models.CharField(max_length=255, unique=True)
    depth = models.PositiveIntegerField()
    numchild = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=50)


class Tenancy(models.Model):
    """A row named by two columns."""

    pk = models.CompositePrimaryKey("building", "unit")
    building = models.IntegerField()
    unit = models.IntegerField()
    tenant = models.CharField(max_length=50, db_index=True)


class Ticket(models.Model):
    """A UUID condition column, and ``code``, which migration 0003 added."""

    ref = models.UUIDField(unique=True, default=uuid.uuid4)
    status = models.CharField(max_length=20, default="open")
    code = models.CharField(max_length=20, db_index=True, default="")


class TicketView(models.Model):
    """An unmanaged model over ``ormapp_ticket`` that does not declare ``code``."""

    ref = models.UUIDField(unique=True)
    status = models.CharField(max_length=20)

    class Meta:
        managed = False
        db_table = "ormapp_ticket"


class Oddity(models.Model):
    """A table and a condition column whose names need quoting."""

    code = models.CharField(max_length=20, db_index=True, db_column="Code Name")
    label = models.CharField(max_length=50, default="")

    class Meta:
        db_table = "ormapp_Odd-Table"
