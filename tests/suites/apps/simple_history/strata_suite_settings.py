"""django-simple-history's test settings, with Strata.

Its ``runtests.py`` (sdist root) holds them as a dict and passes it to
``settings.configure()``; this module takes the same dict, for PostgreSQL when the
harness started one.
"""

import os

from runtests import get_default_settings
from strata_suite import configure

globals().update(
    get_default_settings(
        database_name="postgres" if os.environ.get("STRATA_SUITE_DATABASE_URL") else "sqlite3"
    )
)
configure(globals())
