"""``docs/settings.md``, written from the declarations of the settings and the check IDs.

Run it after changing a declaration (``strata.conf``) or a check ID (``strata.checks``);
``tests/test_checks.py`` fails while the file differs::

    python -m strata.settings_doc > docs/settings.md
"""

from __future__ import annotations

import sys

from .checks import CHECK_IDS
from .conf import settings_table

__all__ = ["settings_document"]


def settings_document() -> str:
    """The whole of ``docs/settings.md``: every setting, then every system check ID."""
    rows = [
        "## System checks",
        "",
        "Every ID Strata's checks emit (`python manage.py check`); silence one with",
        "`SILENCED_SYSTEM_CHECKS`.",
        "",
        "| ID | meaning |",
        "|---|---|",
        *(f"| `{check_id}` | {about} |" for check_id, about in CHECK_IDS.items()),
    ]
    return settings_table() + "\n" + "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(settings_document())
