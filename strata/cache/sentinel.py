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
could lag ("Versions never repeat", DESIGN.md). Each new connection asks a Sentinel
where the primary is, refuses a server that is not the primary, and keeps the failover
epoch (:mod:`strata.cache.epoch`) before it serves anything. When Sentinel promotes a
replica it disconnects the clients of both servers; the next command reconnects to the
new primary.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from .epoch import EPOCH_KEY, IDENTITY_KEY, script_args

__all__ = ["SentinelRedisCache", "SentinelRedisCacheClient", "PrimaryConnection", "parse_location"]

DEFAULT_PORT = 26379

# Without timeouts a primary that vanished would hold every request for the kernel's TCP
# timeout; with them a lookup fails fast and Strata reads from the database.
DEFAULT_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 1.0}


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


class SentinelRedisCacheClient(RedisCacheClient):
    """Django's Redis client with one pool, to the primary that Sentinel names."""

    def __init__(
        self,
        servers,
        *,
        service_name: str,
        epoch_keys: tuple[str, str],
        sentinel_kwargs: dict | None = None,
        **options,
    ):
        super().__init__(servers, **options)
        if sentinel_kwargs is None:
            sentinel_kwargs = {k: v for k, v in options.items() if k.startswith("socket_")}
        # redis-py's clients retry 3 times with backoff (seconds) by default: a request
        # would wait that long for each Sentinel that is down. Ask the next one instead.
        sentinel_kwargs = {"retry": Retry(NoBackoff(), 0), **sentinel_kwargs}
        self._sentinel = Sentinel(parse_location(servers), sentinel_kwargs=sentinel_kwargs)
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
                    pool = self._pools[0] = SentinelConnectionPool(
                        self._service_name,
                        self._sentinel,
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
    below), and the options of the connections to Redis (``password``, ``username``,
    ``db``, ``socket_timeout`` = 1.0, ``socket_connect_timeout`` = 0.5, ...).
    """

    def __init__(self, server, params):
        super().__init__(server, params)
        options = {**DEFAULT_OPTIONS, **self._options}
        service = options.get("service_name")
        if not isinstance(service, str) or not service:
            raise ImproperlyConfigured(
                "SentinelRedisCache needs OPTIONS['service_name']: the name the Sentinels "
                "monitor the primary by (sentinel monitor <name> ...)."
            )
        if "pool_class" in options:
            raise ImproperlyConfigured(
                "SentinelRedisCache chooses its own pool (Sentinel's); remove OPTIONS['pool_class']."
            )
        parse_location(self._servers)  # a bad LOCATION fails here, not on first use
        self.epoch_keys = (self.make_key(EPOCH_KEY), self.make_key(IDENTITY_KEY))
        options["epoch_keys"] = self.epoch_keys
        self._options = options
        self._class = SentinelRedisCacheClient
