"""Django cache backends that Strata adds: Redis behind Sentinel (:mod:`.sentinel`)."""

__all__ = ["SentinelRedisCache"]


def __getattr__(name: str):
    # Lazily: the redis client is optional, and strata.cache.checks runs without it.
    if name == "SentinelRedisCache":
        from .sentinel import SentinelRedisCache

        return SentinelRedisCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
