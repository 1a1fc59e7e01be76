"""Security tests of issue 7: what the real stack shares, with whom, and who may purge it."""
