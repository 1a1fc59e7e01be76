"""Load generation and measurement (wrk, with its results parsed)."""
