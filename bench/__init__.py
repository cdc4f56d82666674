"""Benchmarks of core: see bench/README.md."""
