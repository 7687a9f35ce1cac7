"""Benchmarks that print figures; run by hand (`make bench`), never by the test suite."""
