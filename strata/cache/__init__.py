"""Django cache backends that Strata adds: Redis behind Sentinel (:mod:`.sentinel`)."""

from .sentinel import SentinelRedisCache

__all__ = ["SentinelRedisCache"]
