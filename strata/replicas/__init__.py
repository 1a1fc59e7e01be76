"""Database replicas without stale content.

Reads may go to PostgreSQL streaming replicas, writes go to the primary, a client that
wrote reads its own write, and nothing a lagging replica returned is ever stored under
tag versions newer than its data (the replica rule of ``docs/design.md``). Setup::

    DATABASES = {"default": env.database(...), "replica1": {..., "TEST": {"MIRROR": "default"}}}
    DATABASE_ROUTERS = ["strata.replicas.ReplicaRouter"]
    MIDDLEWARE = ["strata.middleware.StrataMiddleware",
                  "strata.replicas.ReadYourWritesMiddleware", ...]
    STRATA = {..., "REPLICAS": ["replica1"]}

See ``docs/replicas.md``.
"""

from __future__ import annotations

from .middleware import ReadYourWritesMiddleware
from .positions import replica_behind
from .router import ReplicaRouter, note_write, reads_from_primary

__all__ = [
    "ReplicaRouter",
    "ReadYourWritesMiddleware",
    "note_write",
    "reads_from_primary",
    "replica_behind",
]
