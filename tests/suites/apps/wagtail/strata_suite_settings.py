"""Wagtail's test settings (``wagtail/test/settings.py``, inside the package), with Strata.

Wagtail's default cache stays its own ``DatabaseCache``: the suite relies on it being
rolled back with each test (``Site.get_site_root_paths()`` is cached there). With Redis
as the default cache, 7 tests of the chosen subset fail with and without Strata, in a
full run only (order-dependent). Strata's versions and results go to Redis under the
alias ``strata``.
"""

from strata_suite import configure
from wagtail.test.settings import *  # noqa: F403

configure(globals(), cache_alias="strata")
