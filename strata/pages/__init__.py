"""Whole pages: the page cache (Django's per-site cache, with tags) and personal holes."""
