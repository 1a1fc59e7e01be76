"""Strata's command line: ``strata up``, ``strata down``, ``strata status``."""
