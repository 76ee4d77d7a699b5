"""Collector benchmark (`python -m bench.collector`)."""
