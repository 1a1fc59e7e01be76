"""Markers: the unique text every write of ``strata check`` puts into a field.

A marker is ``chk-<run>-<write><n>-v<seq>``, e.g. ``chk-q7x2-title3-v17``: the run (so
that markers left by earlier runs are ignored), the key (the write's name and the
object's number) and the key's sequence number. Lower-case letters, digits and hyphens
only: HTML escaping, ``slugify`` and Django's ``linebreaks`` leave it as it is.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Iterable

__all__ = [
    "new_run_id",
    "marker",
    "key_of",
    "markers_in",
    "encode_seqs",
    "decode_seqs",
    "RUN_ID",
]

RUN_ID = re.compile(r"^[a-z][a-z0-9]{3,11}$")
_ALPHABET = string.ascii_lowercase + string.digits


def new_run_id() -> str:
    """A fresh run id (never seeded: two runs with the same ``--seed`` must differ)."""
    return secrets.choice(string.ascii_lowercase) + "".join(
        secrets.choice(_ALPHABET) for _ in range(5)
    )


def key_of(write: str, n: int) -> str:
    """The key that write ``write`` changes on object number ``n`` (1-based)."""
    return f"{write}{n}"


def marker(run: str, key: str, seq: int) -> str:
    """The marker of write number ``seq`` of ``key`` in run ``run``."""
    return f"chk-{run}-{key}-v{seq}"


def _pattern(run: str) -> re.Pattern[str]:
    return re.compile(rf"chk-{re.escape(run)}-([a-z]+[0-9]+)-v([0-9]+)(?![0-9])")


_patterns: dict[str, re.Pattern[str]] = {}


def markers_in(run: str, text: str) -> dict[str, set[int]]:
    """Every marker of run ``run`` in ``text``: key → the sequence numbers shown."""
    pattern = _patterns.get(run)
    if pattern is None:
        pattern = _patterns[run] = _pattern(run)
    found: dict[str, set[int]] = {}
    for key, seq in pattern.findall(text):
        found.setdefault(key, set()).add(int(seq))
    return found


def encode_seqs(seqs: Iterable[int]) -> str:
    """Sequence numbers as compact ranges: ``{1, 2, 3, 5}`` → ``"1-3,5"``."""
    ordered = sorted(set(seqs))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def decode_seqs(text: str) -> tuple[int, ...]:
    """The inverse of :func:`encode_seqs`, sorted."""
    seqs: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        seqs.extend(range(int(low), int(high or low) + 1))
    return tuple(seqs)
