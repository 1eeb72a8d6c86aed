"""Benchmarks (scripts, not tests): run them as bench/<name>.py."""
