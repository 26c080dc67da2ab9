"""Benchmarks: agentkit against the floor and its peers (`python -m tests.benchmarks`)."""
