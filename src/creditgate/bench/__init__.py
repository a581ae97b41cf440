"""Benchmarks behind `creditgate bench`: they print figures; BENCHMARKS.md records them."""
