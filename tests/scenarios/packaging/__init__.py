"""Strata's release files (sdist and wheel), checked and installed as a user installs them."""
