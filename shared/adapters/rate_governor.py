"""Pacing on what a rate-limited service says of its *shared* bucket, so any number of instances share one limit.

Auth0 limits the Management API per tenant and ARM limits writes and reads per principal; both are token buckets
that every instance of the app draws from, and both say on every answer how full the bucket is (Auth0:
``x-ratelimit-limit``/``-remaining``/``-reset``; ARM: ``x-ms-ratelimit-remaining-subscription-writes``/``-reads``,
with the documented bucket size and refill rate). A per-process token bucket (``throttle.Throttle``) cannot know how
many instances there are; this governor needs not know either.

The rule: keep a reserve of the bucket for requests already on their way, and spread what is left above it over the
time the bucket needs to refill: ``spacing = time_to_refill / (remaining - reserve)``. One instance then calls fast
while the bucket is full and slows down as it empties. N instances that all follow it settle where their summed rate
equals the bucket's refill rate (each sends ``(R - reserve) / t`` while the bucket refills at ``(L - R) / t``), with
``R = (L + N x reserve) / (N + 1)`` left in the bucket: above the reserve, so no 429, whatever N is. At or below the
reserve a caller waits for the next token above it (at the refill rate), with jitter so that instances that read the
same headers do not all call in the same instant. After a 429 every caller holds until the time the service named.

Thread-safe. Callers take their turn under the lock and sleep outside it (waking to look again as answers come); a wait longer than ``max_wait`` raises
TransientError with ``retry_after`` (the message pipeline retries later) instead of blocking a worker for minutes.
"""
from __future__ import annotations

import math
import random as _random
import threading
import time
from typing import Any, Callable, Mapping

from ..domain.errors import TransientError


def number(value: Any) -> float | None:
    try:
        n = float(value)
    except (TypeError, ValueError):
        return None
    return n if math.isfinite(n) else None


class RateGovernor:
    """``limit``/``rate``: the bucket's size and refill rate per second when documented (ARM); left None they are
    learnt from the answers (Auth0 names its bucket size, and its reset time gives the refill rate)."""

    def __init__(self, name: str, *, limit: float | None = None, rate: float | None = None,
                 reserve_fraction: float = 0.4, jitter: float = 0.2, max_wait: float = 30.0, recheck: float = 0.05,
                 unseen_weight: float = 3.0,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 random: Callable[[], float] = _random.random):
        self.name = name
        self._limit = limit
        self._rate = rate
        self.reserve_fraction = float(reserve_fraction)
        self.jitter = float(jitter)
        self.max_wait = float(max_wait)
        self.recheck = float(recheck)
        self.unseen_weight = float(unseen_weight)
        self._clock, self._sleep, self._random = clock, sleep, random
        self._lock = threading.Lock()
        self._remaining: float | None = None  # the last answer's remaining, less the calls sent since
        self._reset: float | None = None      # when the bucket is full again (clock time)
        self._learned: float | None = None    # refill rate learnt from the answers
        self._probing = False                 # the first call is out, its answer not yet seen
        self._sent = 0                        # calls this process sent since that answer
        self._blind = False                   # answers come without the headers
        self._last = -math.inf                # when this process last sent a call
        self._hold_until = 0.0
        self.waited_seconds = 0.0
        self.waits = 0
        self.holds = 0

    # -- what the service said -----------------------------------------------------------------------------------
    def observe(self, *, remaining: float | None, limit: float | None = None, reset: float | None = None,
                whole_seconds: bool = False) -> None:
        """One answer's view of the bucket. ``reset``: clock time at which the bucket is full again, rounded up to a
        whole second when ``whole_seconds``. An answer without the headers (``remaining`` None) means there is
        nothing to pace on: calls go out unpaced until one with them arrives."""
        if remaining is None:
            with self._lock:
                self._probing = False
                self._blind = self._remaining is None
            return
        with self._lock:
            now = self._clock()
            self._remaining = max(0.0, float(remaining))
            self._sent = 0
            if limit is not None and limit > 0:
                self._limit = float(limit)
            elif self._limit is not None and self._remaining > self._limit:
                self._limit = self._remaining  # a bigger bucket than the documented one
            # Whole seconds (Auth0's UNIX time) are rounded up: the bucket is full somewhere in the second before the
            # one named, so half a second earlier is the best guess of when.
            whole = reset is not None and whole_seconds
            self._reset = reset - 0.5 if whole else reset
            # The refill rate, learnt from answers that still had tokens (on an empty bucket Auth0's reset is the
            # next token's time, not the full bucket's): missing tokens over the time to refill them.
            to_full = None if reset is None else reset - now
            if self._limit and to_full is not None and 0 < self._remaining < self._limit and to_full > 0.05:
                seen = (self._limit - self._remaining) / to_full
                if whole:
                    # With the rounding, ``seen`` is only a lower bound of the rate: a few missing tokens refill in a
                    # fraction of the second the header names, and 50/s can look like 2/s (the first call after a
                    # 429 would then wait (1 + reserve) / 2 s). The answers with many tokens missing come close to
                    # the rate: keep the highest bound, let it fade slowly in case the tenant's limit was lowered.
                    self._learned = seen if self._learned is None else max(seen, 0.995 * self._learned)
                else:
                    self._learned = seen if self._learned is None else 0.8 * self._learned + 0.2 * seen

    def observe_auth0(self, headers: Mapping[str, Any]) -> None:
        """Auth0's ``x-ratelimit-limit``/``-remaining``/``-reset`` (UNIX seconds, so rounded), on every answer."""
        self.observe(remaining=number(headers.get("x-ratelimit-remaining")),
                     limit=number(headers.get("x-ratelimit-limit")), reset=number(headers.get("x-ratelimit-reset")),
                     whole_seconds=True)

    def hold(self, seconds: float) -> None:
        """The service refused with 429: no call before ``seconds`` from now (plus jitter), and the bucket is
        taken as empty."""
        with self._lock:
            now = self._clock()
            self._hold_until = max(self._hold_until, now + max(0.0, seconds) + self._random() * self.jitter)
            self._remaining = 0.0
            self.holds += 1

    # -- pacing ----------------------------------------------------------------------------------------------------
    def _refill_rate(self, now: float) -> float | None:
        return self._rate or self._learned

    def spacing(self, now: float | None = None) -> float:
        """Seconds this process should leave before its next call, from what it knows now."""
        now = self._clock() if now is None else now
        remaining, limit = self._remaining, self._limit
        if remaining is None:
            return 0.0  # nothing to pace on
        # What this process sent since the last answer is not in it yet: count it as taken, and ``unseen_weight``
        # times over (the other instances, unseen, are likely sending as well; 3 keeps the first burst of 4 busy
        # instances from a full bucket within it).
        remaining = max(0.0, remaining - self.unseen_weight * self._sent)
        reserve = max(1.0, self.reserve_fraction * limit) if limit else 1.0
        rate = self._refill_rate(now)
        if self._reset is not None and remaining > 0:
            to_refill = max(0.0, self._reset - now) + (self.unseen_weight * self._sent / rate if rate else 0.0)
        elif limit and rate:
            to_refill = max(0.0, limit - remaining) / rate
        else:
            to_refill = 0.0
        above = remaining - reserve
        if above >= 1.0:
            return to_refill / above
        # At or under the reserve: one call per token the bucket gains, and fewer the deeper under it (every
        # instance there does the same, so together they let it climb back).
        if rate:
            return (1.0 - above) / rate
        return max(to_refill, 0.1)

    def turn(self, factor: float = 1.0) -> float:
        """0.0 and the turn taken when this process may call now; else the seconds until it may (nothing taken).
        ``factor`` scales the spacing (jitter)."""
        with self._lock:
            now = self._clock()
            if self._remaining is None and not self._blind:
                # Nothing seen yet: one call goes out and its answer tells the others how full the bucket is (a probe
                # that got no answer at all is given up after a second).
                if self._probing and now - self._last < 1.0:
                    return self.recheck
                self._probing = True
                self._last = now
                return 0.0
            wait = max(self._last + self.spacing(now) * factor, self._hold_until) - now
            if wait <= 0:
                self._last = now
                self._sent += 1
                return 0.0
            return wait

    def acquire(self, operation: str = "") -> float:
        """Wait for this call's turn; returns the seconds waited. The turn is looked at again at least every
        ``recheck`` seconds while waiting, so that fresher answers (the bucket refilled) shorten a wait at once."""
        waited = 0.0
        factor = 1.0 + self.jitter * (self._random() - 0.5) if self.jitter else 1.0
        while True:
            wait = self.turn(factor)
            if wait <= 0:
                if waited > 0:
                    with self._lock:
                        self.waited_seconds += waited
                        self.waits += 1
                return waited
            if not waited and wait > self.max_wait:
                raise TransientError(f"{self.name}: the shared rate limit leaves no slot for {wait:.1f} s",
                                     service=self.name, operation=operation or "pace", retry_after=wait)
            step = min(wait, self.recheck)
            self._sleep(step)
            waited += step
