"""Dependency tags: what every cached artifact was built from, and their versions.

A tag names a piece of the database (a table, the rows matching a condition, one row);
its *version* lives in the shared cache and changes, after commit, whenever a write
touches that piece. An artifact stores the versions it saw before it read the database,
and is valid only while they are all current (``docs/design.md``, "The consistency protocol").
"""

from .naming import ALL, bulk_tag, condition_tag, table_tag
from .recorder import Recorder, current_tags, recording
from .stores import version_store
from .versions import VersionStore

__all__ = [
    "ALL",
    "table_tag",
    "bulk_tag",
    "condition_tag",
    "Recorder",
    "recording",
    "current_tags",
    "VersionStore",
    "version_store",
]
