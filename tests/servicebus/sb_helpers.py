"""Small helpers shared by the Service Bus stand-in tests."""

from __future__ import annotations

import time


def queue_view(standin, name):
    return standin.snapshot()["queues"][name]


def wait_for(predicate, timeout=10.0, interval=0.05):
    """Poll ``predicate`` until it returns something truthy; return that value (or the last one)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
