"""The tags of a response, as headers an accelerator purges by.

Varnish's xkey vmod reads ``xkey``; Fastly and other CDNs read ``Surrogate-Key``. Both
carry the same space-separated tags. Header lines have limits (Varnish 8 KB per header
by default, CDNs 16 KB), so a page with too many tags is labelled with coarser ones: its
tables (``newsroom_comment``) and their ``bulk`` tags, which every write to those tables
changes. Coarser only ever means purged more often, never less.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.http import HttpResponseBase

from ..tags.naming import ALL

__all__ = ["TAG_HEADERS", "tags_header_value", "coarse_tags", "set_tag_headers"]

TAG_HEADERS = ("xkey", "Surrogate-Key")


def coarse_tags(tags: Iterable[str]) -> set[str]:
    """The table-level tags that cover ``tags`` (a write to a table changes its tags)."""
    coarse = set()
    for tag in tags:
        if tag == ALL:
            coarse.add(ALL)
            continue
        table = tag.split(".", 1)[0]
        coarse.add(table)
        coarse.add(f"{table}.bulk")
    return coarse


def tags_header_value(tags: Iterable[str], limit: int) -> str | None:
    """Tags joined for a header of at most ``limit`` bytes (coarsened when needed).

    ``None`` when even the tables do not fit: the response must not be stored upstream.
    """
    tags = sorted(set(tags))
    value = " ".join(tags)
    if len(value) <= limit:
        return value
    value = " ".join(sorted(coarse_tags(tags)))
    if len(value) <= limit:
        return value
    return None


def set_tag_headers(response: HttpResponseBase, tags: Iterable[str], limit: int) -> bool:
    """Label ``response`` with its tags; False when they cannot fit (do not share it)."""
    value = tags_header_value(tags, limit)
    if value is None:
        return False
    if value:
        for header in TAG_HEADERS:
            response[header] = value
    return True
