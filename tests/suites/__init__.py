"""Test suites that nobody here wrote, run with Strata on: Django's own and real apps'."""
