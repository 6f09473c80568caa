"""Benchmarks of the engine and the service against their baselines: `python -m bench`."""
