"""django-reversion's test settings (``tests/test_project/settings.py``), with Strata.

Its tests use every alias: ``default`` (SQLite), ``postgres`` and ``mysql``. On
PostgreSQL all three become databases of the started server; the ``mysql`` alias is then
a third PostgreSQL database (no MySQL here), which the tests only use as another
database.
"""

from strata_suite import configure
from test_project.settings import *  # noqa: F403

configure(globals())
