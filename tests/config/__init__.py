"""Tests of `strata config` (docs/config.md)."""
