"""Test kit: helpers the test suite (and benchmarks) use to build real components."""
