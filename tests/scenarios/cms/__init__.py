"""A Wagtail site (page types by multi-table inheritance) through the whole stack."""
