"""Strata: the High Performance Django stack, cached all the way down."""

__version__ = "0.1.0"
