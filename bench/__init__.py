"""Benchmarks of the app on the local stack (``make bench``): figures printed beside their targets, never asserted.

``critical_path`` (the flows' external calls, their dependencies, the floor and the design minimum), ``scenarios``
(the measurements), ``processes`` (the stack and the host as subprocesses, and a CPU sampler), ``delay_proxy``
(latency for the ledger), ``report`` (the table and docs/BENCHMARKS.md). Results: docs/BENCHMARKS.md.
"""
