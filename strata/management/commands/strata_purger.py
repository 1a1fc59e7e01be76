"""``manage.py strata_purger``: deliver the invalidation log to the accelerators.

Run one (``strata up`` does, and ``strata config`` writes a systemd unit) or more: one
delivers, the others stand by (:mod:`strata.bus.purger`). It reads the project's own
settings: the cache (``STRATA['CACHE']``), ``ACCELERATORS``, ``PURGE_SECRET``,
``PURGE_DELAY`` and ``EDGE_TTL``.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from django.core.management.base import BaseCommand, CommandError

from strata.bus import bus_log
from strata.bus.purger import BusPurger
from strata.conf import strata_settings
from strata.edge.fence import horizon


class Command(BaseCommand):
    help = (
        "Deliver the invalidation log to every accelerator (STRATA['ACCELERATORS']) until "
        "stopped; run two or more for availability: one delivers, the others stand by."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="deliver what the log holds now, then exit"
        )

    def handle(self, *args, once: bool = False, verbosity: int = 1, **options):
        conf = strata_settings()
        if not conf.accelerators:
            raise CommandError("STRATA['ACCELERATORS'] is empty: there is nothing to purge.")
        log = bus_log()
        if log is None:
            raise CommandError(
                f"the cache {conf.cache_alias!r} keeps no invalidation log: the bus needs "
                "Django's Redis cache (or strata.cache.SentinelRedisCache) and "
                "STRATA['BUS']['ENABLED']; without it each app process purges by itself."
            )
        _log_to_stderr(verbosity)
        purger = BusPurger(
            log, conf.accelerators, conf.purge_secret, conf.purge_delay, horizon(conf.edge_ttl)
        )
        if once:
            try:
                purger.deliver_once()
            except Exception as exc:
                raise CommandError(f"could not deliver the log: {exc}") from None
            finally:
                purger.close()
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        purger.run(stop)


def _log_to_stderr(verbosity: int) -> None:
    """Say what the purger does on stderr, unless the project's LOGGING already does."""
    logger = logging.getLogger("strata.bus")
    logger.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
