"""Settings for the replica tests: a PostgreSQL primary and a streaming replica.

``tests/replicas/test_on_postgresql.py`` starts both and runs
``tests/replicas/replica_cases.py`` under these settings in a pytest of its own, with
``STRATA_TEST_PRIMARY_URL`` and ``STRATA_TEST_REPLICA_URL`` naming the two servers.
"""

import os

from strata import env
from tests.settings import *  # noqa: F403
from tests.settings import MIDDLEWARE, STRATA

DATABASES = {
    "default": env.database(default="", var="STRATA_TEST_PRIMARY_URL"),
    # Django's test run makes the primary's test database; the replica replays it.
    "replica1": {
        **env.database(default="", var="STRATA_TEST_REPLICA_URL"),
        "TEST": {"MIRROR": "default"},
    },
}
DATABASE_ROUTERS = ["strata.replicas.ReplicaRouter"]
MIDDLEWARE = [MIDDLEWARE[0], "strata.replicas.ReadYourWritesMiddleware", *MIDDLEWARE[1:]]
STRATA = {**STRATA, "REPLICAS": ["replica1"], "READ_YOUR_WRITES": 30}
TEST_REPLICA_PG = {
    "bindir": os.environ.get("STRATA_TEST_PG_BINDIR", ""),
    "primary_port": int(os.environ.get("STRATA_TEST_PRIMARY_PORT", "0")),
    "replica_port": int(os.environ.get("STRATA_TEST_REPLICA_PORT", "0")),
}
