"""Strata: the High Performance Django stack, cached all the way down."""

__version__ = "0.2.0"
