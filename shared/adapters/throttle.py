"""Client-side pacing of a rate-limited API: a token bucket that makes callers wait for their turn.

Auth0 limits its Management API per tenant with a token bucket (documented rate and burst per plan) and answers 429
when it is empty. A 429 costs a whole delivery: the event fails, is scheduled again, and runs its ledger steps again
(and after a refused create, a search of every application). Under a backlog, workers that all call as fast as they
can meet 429s on most calls. Pacing on the client with the same bucket the server applies keeps each process at or
under the limit, so the calls wait a little instead of failing.

Callers reserve their slot under a lock and then sleep outside it, so slots are handed out in order and no caller
waits longer than the bucket requires. A wait longer than ``max_wait`` is not taken: the caller gets a
TransientError with ``retry_after`` instead, and the message pipeline retries later.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from ..domain.errors import TransientError


class Throttle:
    def __init__(self, rate: float, burst: int, *, max_wait: float = 30.0, service: str = "",
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_wait = float(max_wait)
        self.service = service
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)  # negative: slots already promised to waiting callers
        self._stamp = clock()
        self.waited_seconds = 0.0  # in all, for benchmarks and tests
        self.waits = 0

    def acquire(self, operation: str = "") -> float:
        """Take one request's slot, sleeping until it comes. Returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            wait = max(0.0, (1.0 - self._tokens) / self.rate)
            if wait > self.max_wait:
                raise TransientError(f"client-side rate limit: the next request slot is {wait:.1f} s away",
                                     service=self.service, operation=operation or "throttle", retry_after=wait)
            self._tokens -= 1.0
            if wait > 0:
                self.waited_seconds += wait
                self.waits += 1
        if wait > 0:
            self._sleep(wait)
        return wait

    def hold(self, seconds: float) -> None:
        """No slot before ``seconds`` from now (the server said its bucket is empty until then); callers already
        sleeping on a slot keep it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens = min(self._tokens, 1.0 - max(0.0, seconds) * self.rate)
