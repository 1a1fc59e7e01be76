"""Test settings: the demo's, plus a second database alias that mirrors the first.

The "replica" alias reads the same database through another connection, like a read
replica that has replayed everything, so that tests can route reads and writes apart.
"""

from newsroom_site.settings import *  # noqa: F403
from newsroom_site.settings import DATABASES

DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
