"""Settings for the pgbouncer tests: the demo's database through pgbouncer in transaction mode.

``tests/stack/pgbouncer/test_through_pgbouncer.py`` starts PostgreSQL and pgbouncer and runs
``tests/stack/pgbouncer/pgbouncer_cases.py`` under these settings in a pytest of its own, with
``DATABASE_URL`` naming pgbouncer (``?pool_mode=transaction``, read by
:func:`strata.env.database` in the demo's settings).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, STRATA

if not DATABASES["default"].get("DISABLE_SERVER_SIDE_CURSORS"):
    raise RuntimeError("DATABASE_URL must name pgbouncer with ?pool_mode=transaction")

DATABASES = {
    "default": DATABASES["default"],
    # The same pgbouncer, configured as if it were PostgreSQL itself: what breaks.
    "with_cursors": {
        **DATABASES["default"],
        "DISABLE_SERVER_SIDE_CURSORS": False,
        "TEST": {"MIRROR": "default"},
    },
}
STRATA = {**STRATA, "TRANSACTION_POOLED": ["default", "with_cursors"]}
TEST_PGBOUNCER_POOL_SIZE = int(os.environ.get("STRATA_TEST_PGBOUNCER_POOL_SIZE", "2"))
