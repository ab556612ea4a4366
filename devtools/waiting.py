"""Polling until something is true: the demo and the end-to-end tests wait on asynchronous delivery this way."""
from __future__ import annotations

import time


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.2, error=AssertionError):
    """Call ``predicate`` until it returns something truthy and return that; raise ``error`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise error(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
