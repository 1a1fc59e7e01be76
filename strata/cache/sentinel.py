"""Django's Redis cache, with the primary found through Redis Sentinel.

.. code-block:: python

    CACHES = {
        "default": {
            "BACKEND": "strata.cache.sentinel.SentinelRedisCache",
            "LOCATION": ["sentinel://10.0.0.5:26379", "sentinel://10.0.0.6:26379"],
            "OPTIONS": {"service_name": "strata", "password": "..."},
        }
    }

Reads and writes go to the primary, never to a replica: tag versions read from a replica
could lag ("Versions never repeat", docs/design.md). Each new connection asks a Sentinel
where the primary is, refuses a server that is not the primary, and keeps the failover
epoch (:mod:`strata.cache.epoch`) before it serves anything. When Sentinel promotes a
replica it disconnects the clients of both servers; the next command reconnects to the
new primary.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from urllib.parse import urlsplit

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)

from .epoch import EPOCH_KEY, IDENTITY_KEY, script_args

__all__ = [
    "SentinelRedisCache",
    "SentinelRedisCacheClient",
    "PrimaryConnection",
    "PrimaryPool",
    "parse_location",
    "options_problem",
    "stop_watching",
]

log = logging.getLogger("strata.cache")

DEFAULT_PORT = 26379

# Without timeouts a primary that vanished would hold every request for the kernel's TCP
# timeout; with them a lookup fails fast and Strata reads from the database.
DEFAULT_OPTIONS = {
    "socket_connect_timeout": 0.5,
    "socket_timeout": 0.5,
    "primary_check_interval": 1.0,
}


def parse_location(location) -> list[tuple[str, int]]:
    """``sentinel://host:port`` addresses (a list, or one string split on ``,`` or ``;``)."""
    entries = location.replace(";", ",").split(",") if isinstance(location, str) else location
    addresses = []
    for entry in entries or ():
        entry = str(entry).strip()
        parts = urlsplit(entry)
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            port = None
        if parts.scheme != "sentinel" or not parts.hostname or port is None:
            raise ImproperlyConfigured(
                f"SentinelRedisCache: LOCATION entry {entry!r} is not sentinel://host:port."
            )
        addresses.append((parts.hostname, port))
    if not addresses:
        raise ImproperlyConfigured("SentinelRedisCache: LOCATION names no Sentinel.")
    return addresses


def options_problem(options: dict) -> str | None:
    """What is wrong with a ``SentinelRedisCache``'s ``OPTIONS``, or ``None``."""
    service = options.get("service_name")
    if not isinstance(service, str) or not service:
        return (
            "OPTIONS['service_name'] is missing: the name the Sentinels monitor the primary "
            "by (sentinel monitor <name> ...)"
        )
    if "pool_class" in options:
        return "OPTIONS['pool_class'] is set, but the backend uses Sentinel's own pool"
    interval = options.get("primary_check_interval", DEFAULT_OPTIONS["primary_check_interval"])
    if not isinstance(interval, int | float) or isinstance(interval, bool) or interval < 0:
        return f"OPTIONS['primary_check_interval'] must be seconds >= 0, not {interval!r}"
    return None


class Sentinels(Sentinel):
    """redis-py's Sentinel client, whose "no primary" error fits on one line."""

    def discover_master(self, service_name):
        try:
            return super().discover_master(service_name)
        except MasterNotFoundError as exc:
            asked = ", ".join(
                "{host}:{port}".format(**s.connection_pool.connection_kwargs)
                for s in self.sentinels
            )
            raise MasterNotFoundError(
                f"No master found for {service_name!r}: no Sentinel named one (asked {asked})"
            ) from exc


class PrimaryConnection(SentinelManagedConnection):
    """A connection to the primary that Sentinel names, checked before it serves anything.

    On connect it runs the epoch script: an error if the server is not the primary (the
    connection is dropped), a new epoch if the primary changed or restarted.
    """

    def __init__(self, *, epoch_keys: tuple[str, str], **kwargs):
        self.epoch_keys = epoch_keys
        super().__init__(**kwargs)

    def on_connect_check_health(self, check_health: bool = True):
        super().on_connect_check_health(check_health)
        self.send_command("EVAL", *script_args(*self.epoch_keys))
        self.read_response()


class PrimaryPool(SentinelConnectionPool):
    """Sentinel's pool of connections to the primary, which also asks every ``interval``
    seconds where the primary is (in a thread of each process).

    Sentinel disconnects the clients of a primary it demotes, but an old primary that is
    still up is demoted only seconds after the promotion (or never, behind a partition),
    and its clients keep using it meanwhile. A pool that sees a new address drops its
    connections to the old one (idle ones now, busy ones when they are released).
    """

    def __init__(self, service_name, sentinel_manager, *, interval: float = 1.0, **kwargs):
        super().__init__(service_name, sentinel_manager, **kwargs)
        self.interval = interval
        self._watched_by = 0  # the pid whose thread watches this pool

    def get_connection(self, *args, **kwargs):
        connection = super().get_connection(*args, **kwargs)
        if self._watched_by != self.pid and self.interval > 0:  # once per process
            with _starting:
                if self._watched_by != self.pid:
                    self._watched_by = self.pid
                    threading.Thread(
                        target=_watch,
                        args=(weakref.ref(self), self.pid),
                        name="strata-sentinel",
                        daemon=True,
                    ).start()
        return connection

    def follow_primary(self) -> tuple[str, int]:
        """Ask the Sentinels where the primary is now; leave the old one if it moved."""
        return self.get_master_address()


def _watch(pool_ref, pid: int) -> None:
    failing = False
    while not _exiting.is_set() and (pool := pool_ref()) is not None and pool.pid == pid:
        interval = pool.interval
        try:
            pool.follow_primary()
        except Exception as exc:
            if not failing and not _exiting.is_set():
                log.warning("strata: cannot ask the Sentinels for the primary (%s)", exc)
            failing = True
        else:
            failing = False
        del pool
        _exiting.wait(interval)


_exiting = threading.Event()
_starting = threading.Lock()


def stop_watching() -> None:
    """Stop every process-wide thread that asks the Sentinels (at exit; tests)."""
    _exiting.set()


atexit.register(stop_watching)  # before logging shuts down (atexit runs last-in first-out)


class SentinelRedisCacheClient(RedisCacheClient):
    """Django's Redis client with one pool, to the primary that Sentinel names."""

    def __init__(
        self,
        servers,
        *,
        service_name: str,
        epoch_keys: tuple[str, str],
        sentinel_kwargs: dict | None = None,
        primary_check_interval: float = 1.0,
        **options,
    ):
        super().__init__(servers, **options)
        self._interval = primary_check_interval
        if sentinel_kwargs is None:
            sentinel_kwargs = {k: v for k, v in options.items() if k.startswith("socket_")}
        # redis-py's clients retry 3 times with backoff (seconds) by default: a request
        # would wait that long for each Sentinel that is down. Ask the next one instead.
        sentinel_kwargs = {"retry": Retry(NoBackoff(), 0), **sentinel_kwargs}
        self._sentinel = Sentinels(parse_location(servers), sentinel_kwargs=sentinel_kwargs)
        self._service_name = service_name
        self._epoch_keys = epoch_keys
        self._lock = threading.Lock()

    @property
    def sentinel(self) -> Sentinel:
        """The Sentinels asked for the primary's address."""
        return self._sentinel

    def _get_connection_pool(self, write):
        # Reads too: a replica may lag the primary, and versions must not.
        pool = self._pools.get(0)
        if pool is None:
            with self._lock:
                pool = self._pools.get(0)
                if pool is None:
                    pool = self._pools[0] = PrimaryPool(
                        self._service_name,
                        self._sentinel,
                        interval=self._interval,
                        connection_class=PrimaryConnection,
                        epoch_keys=self._epoch_keys,
                        **self._pool_options,
                    )
        return pool


class SentinelRedisCache(RedisCache):
    """Django's ``RedisCache`` for a primary with replicas under Redis Sentinel.

    ``LOCATION``: the Sentinels, ``sentinel://host:port``. ``OPTIONS``: ``service_name``
    (required: the name in ``sentinel monitor``), ``sentinel_kwargs`` (connection options
    for the Sentinels, e.g. their ``password``; by default the ``socket_*`` options
    below), ``primary_check_interval`` (seconds between two questions to the Sentinels
    about where the primary is, in a thread of each process; 1.0, ``0`` = only when
    connecting), and the options of the connections to Redis (``password``,
    ``username``, ``db``, ``socket_timeout`` = 0.5, ``socket_connect_timeout`` = 0.5, ...).
    """

    def __init__(self, server, params):
        super().__init__(server, params)
        options = {**DEFAULT_OPTIONS, **self._options}
        problem = options_problem(options)
        if problem is not None:
            raise ImproperlyConfigured(f"SentinelRedisCache: {problem}.")
        parse_location(self._servers)  # a bad LOCATION fails here, not on first use
        self.epoch_keys = (self.make_key(EPOCH_KEY), self.make_key(IDENTITY_KEY))
        options["epoch_keys"] = self.epoch_keys
        self._options = options
        self._class = SentinelRedisCacheClient
