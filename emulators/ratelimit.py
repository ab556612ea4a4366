"""Token bucket rate limiting, as Auth0 applies it to the Management API.

Auth0 documents a bucket per tenant: ``x-ratelimit-limit`` is the bucket size, ``x-ratelimit-remaining`` what is
left, ``x-ratelimit-reset`` the UNIX time (seconds) at which the bucket is full again, and a 429 when it is empty.
Source: https://auth0.com/docs/troubleshoot/customer-support/operational-policies/rate-limit-policy/management-api-endpoint-rate-limits
"""
from __future__ import annotations

import math
import threading
import time


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock=time.time):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> tuple[bool, dict[str, str]]:
        """Take one token. Returns (allowed, rate-limit headers)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            allowed = self._tokens >= 1.0
            if allowed:
                self._tokens -= 1.0
            missing = self.burst - self._tokens
            # When empty, reset is when the next token arrives (what a client should wait for);
            # otherwise when the bucket is full again.
            wait = (1.0 - self._tokens) / self.rate if not allowed else missing / self.rate
            headers = {
                "x-ratelimit-limit": str(self.burst),
                "x-ratelimit-remaining": str(max(0, int(math.floor(self._tokens)))),
                "x-ratelimit-reset": str(int(math.ceil(now + wait))),
            }
            return allowed, headers
