"""What Strata tells the accelerator (Varnish) about each response."""
