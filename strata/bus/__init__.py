"""The invalidation bus: every writer's changes reach every accelerator, whoever wrote.

A Redis version store appends each bump's tags to a log in the same round trip
(:mod:`strata.tags.changelog`); ``manage.py strata_purger`` reads the log and purges the
accelerators (:mod:`strata.bus.purger`), recording per node what it delivered
(:mod:`strata.bus.log`). The load balancer's readiness check fences a node that is behind
(:mod:`strata.edge.fence`), and a request that wrote waits until its change went out
(:mod:`strata.bus.waiting`). ``docs/bus.md`` tells the whole story.
"""

from .access import bus_log
from .log import InvalidationLog

__all__ = ["bus_log", "InvalidationLog"]
