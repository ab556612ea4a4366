"""When to try a transiently failed event again, and when to give up.

The Functions host retries by redelivering at once, which burns the queue's MaxDeliveryCount in seconds during an
outage. Instead the trigger completes the message after scheduling a copy on the same queue, later, with this
policy's delay: exponential backoff with full jitter (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/),
or the service's own reset time after a 429. The copy carries the attempt number and the time of the first
attempt, so the budget (attempts and total time) holds across copies.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

ATTEMPT_PROPERTY = "retry-attempt"
FIRST_ATTEMPT_PROPERTY = "retry-first-attempt-utc"
ORIGINAL_ID_PROPERTY = "retry-original-message-id"
LAST_ERROR_PROPERTY = "retry-last-error"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8            # scheduled retries after the first delivery
    max_total_seconds: float = 3600  # from the first attempt to the last scheduled one
    base_seconds: float = 2.0
    max_delay_seconds: float = 300.0

    def next_delay(self, attempt: int, first_attempt: dt.datetime, now: dt.datetime,
                   retry_after: float | None = None, rng: random.Random | None = None) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1-based), or None when the budget is spent."""
        if attempt > self.max_attempts:
            return None
        ceiling = min(self.max_delay_seconds, self.base_seconds * (2 ** (attempt - 1)))
        delay = (rng or random).uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            # The service said when capacity returns; a little jitter spreads the herd that was told the same.
            delay = max(0.0, retry_after) + (rng or random).uniform(0, min(1.0, self.base_seconds))
        elapsed = (now - first_attempt).total_seconds()
        if elapsed + delay > self.max_total_seconds:
            return None
        return delay
