"""Test kit: helpers the test suite (and benchmarks) use to build real components: a live
gateway in a thread (``live``), a populated world (``world``), stores, ports, SMTP clients
and sinks.

Above every layer: may import any package of ``gateway`` (function-local imports included);
nothing in ``gateway`` imports it.
"""
