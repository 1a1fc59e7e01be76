"""Tests of the edge layer against a real accelerator."""
