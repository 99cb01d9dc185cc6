"""Benchmarks whose results are written into BENCHMARKS.md by the commands that measure them."""
