"""How tags are spelled.

==========================  ============================================================
``newsroom_comment``        the table: changed by every write to it
``newsroom_comment.bulk``   changed by writes whose rows are unknown (QuerySet.update,
                            raw SQL); every finer tag of the table is read with it
``newsroom_comment.article_id=5``  the rows where ``article_id = 5`` (a condition)
``newsroom_comment.id=77``  one row: a condition on the primary key
``newsroom_comment.new``    changed by inserts whose new keys are unknown; reads pinned
                            to primary keys are read with it
``*``                       everything (migrations, unparseable raw SQL, ``invalidate_all``)
==========================  ============================================================

Tags are plain ASCII without spaces, so they can go into cache keys and into the
``xkey`` header that Varnish purges by. Values that are long or unusual are hashed, and
so are table and column names that hold a space, a dot or quotes.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache

__all__ = ["ALL", "table_tag", "bulk_tag", "new_rows_tag", "condition_tag", "value_token"]

ALL = "*"
_SAFE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,40}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_$-]{1,64}$")


@lru_cache(maxsize=4096)
def _name(name: str) -> str:
    """A table or column name as it goes into a tag: as it is, or hashed when it holds
    what a tag cannot (a space, a dot, quotes: ``"Code Name"``, ``schema.table``)."""
    if _SAFE_NAME.match(name):
        return name
    return "n" + hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def table_tag(table: str) -> str:
    """The tag of a whole table."""
    return _name(table)


def bulk_tag(table: str) -> str:
    """The tag changed by writes to ``table`` whose rows are unknown."""
    return f"{_name(table)}.bulk"


def new_rows_tag(table: str) -> str:
    """The tag changed by inserts into ``table`` whose primary keys are unknown."""
    return f"{_name(table)}.new"


def value_token(value: object) -> str:
    """A short, stable spelling of a column value (the same for equal values).

    Equal values must give equal tokens whatever type the ORM handed us: the integer 5
    from a filter and the string "5" from a form are the same row to the database only
    after conversion, so callers pass values already converted by the field
    (``field.get_prep_value``).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | Decimal):
        text = str(value)
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, uuid.UUID):
        text = value.hex
    elif isinstance(value, datetime | date | time):
        text = value.isoformat()
    elif isinstance(value, bytes | memoryview):
        text = "b" + hashlib.sha1(bytes(value)).hexdigest()[:16]
    else:
        text = str(value)
    if _SAFE.match(text):
        return text
    return "h" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def condition_tag(table: str, column: str, value: object) -> str:
    """The tag of the rows of ``table`` where ``column`` equals ``value``."""
    return f"{_name(table)}.{_name(column)}={value_token(value)}"
