"""Runs: admission, per-thread ordering, execution and event fan-out."""
