"""django-model-utils' test settings (``tests/settings.py`` of its sdist), with Strata."""

from strata_suite import configure

from tests.settings import *  # noqa: F403

configure(globals())
