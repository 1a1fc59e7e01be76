"""Test settings: the demo's, plus a second database alias that mirrors the first.

The "replica" alias reads the same database through another connection, like a read
replica that has replayed everything, so that tests can route reads and writes apart.
"""

import os
import tempfile

from newsroom_site.settings import *  # noqa: F403
from newsroom_site.settings import DATABASES
from strata import env

DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}

# A cache of its own: the demo's default directory is shared by every process on the
# machine (a running demo, another test run), whose writes would change these tests'
# versions under them.
if "CACHE_URL" not in os.environ:
    CACHES = {"default": env.cache(default=f"file://{tempfile.mkdtemp(prefix='strata-tests-')}")}

# Model shapes of real projects (inheritance, trees, generic relations, composite keys).
INSTALLED_APPS = [*INSTALLED_APPS, "tests.ormapp"]  # noqa: F405
