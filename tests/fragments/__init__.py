"""Tests of the fragment cache (``{% cached %}`` for Django and Jinja2)."""
