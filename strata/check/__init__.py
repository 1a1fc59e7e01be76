"""``strata check``: a consistency and fault checker for a running Strata stack.

Client processes send mixed traffic through the load balancer (:mod:`.traffic`) and
write through management commands that know only the database and the cache
(:mod:`.commands`), a schedule of faults runs meanwhile (:mod:`.faults`), and the
freshness checker (:mod:`.freshness`) judges every read against the writes acknowledged
before it started.
A site is described by a scenario (:mod:`.scenario`; the demo's is built in).
"""

from .freshness import Verdict, check
from .history import History, Phase, Read, Write
from .run import CheckError, CheckPlan, CheckResult, run_check
from .scenario import Scenario, ScenarioError, demo_scenario, load_scenario, parse_scenario

__all__ = [
    "CheckError",
    "CheckPlan",
    "CheckResult",
    "History",
    "Phase",
    "Read",
    "Scenario",
    "ScenarioError",
    "Verdict",
    "Write",
    "check",
    "demo_scenario",
    "load_scenario",
    "parse_scenario",
    "run_check",
]
