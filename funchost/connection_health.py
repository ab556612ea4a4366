"""What a Service Bus listener says about its namespace while it is unreachable, in the words of its schedule.

Each receive slot reconnects on the same capped schedule (:class:`Backoff`: 1, 2, 4, 8, then every 15 s). The log
tells one story per namespace whatever the number of slots: an ERROR when the namespace becomes unreachable, which
states the schedule; then one ERROR per step of the schedule as the first slot reaches it ("attempt 3 of the
schedule, next retry at 10:00:12Z, in 4 s"), and once per 15 s after the steps; a single INFO line when it answers
again. Retries of other slots at a step already reported stay at DEBUG.
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("funchost.servicebus")


class Backoff:
    """Reconnect delays of one slot: 1, 2, 4, 8 s, then every 15 s until the namespace answers.

    No jitter: the schedule is what the log shows, and one local host's few slots do not make a thundering herd.
    The SDK's own retries (clientRetryOptions) have already run before a failure reaches this backoff."""

    SCHEDULE = (1.0, 2.0, 4.0, 8.0, 15.0)

    def __init__(self, schedule: tuple[float, ...] = SCHEDULE) -> None:
        self.schedule = schedule
        self.attempt = 0

    def next_delay(self) -> float:
        delay = self.schedule[min(self.attempt, len(self.schedule) - 1)]
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


SCHEDULE_TEXT = "1, 2, 4, 8, then every 15 s"


def clock(seconds_from_now: float) -> str:
    """Wall-clock UTC time ``seconds_from_now`` ahead, as the console log prints times (``10:00:05Z``)."""
    return time.strftime("%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


class ConnectionHealth:
    def __init__(self, label: str, namespace: str) -> None:
        self.label = label
        self.namespace = namespace or "(unknown namespace)"
        self._down_since: float | None = None
        self._reported_attempt = 0  # the furthest step of the schedule the log has told
        self._last_report = 0.0
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, error: BaseException, attempt: int, delay: float) -> None:
        """A slot's reconnect ``attempt`` (1 for its first) failed; it waits ``delay`` seconds for the next."""
        now = time.monotonic()
        steps = len(Backoff.SCHEDULE)
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = now
            new_step = attempt > self._reported_attempt and attempt <= steps
            periodic = attempt > steps and now - self._last_report >= Backoff.SCHEDULE[-1] * 0.9
            report = first or new_step or periodic
            if report:
                self._reported_attempt = max(self._reported_attempt, attempt)
                self._last_report = now
            down_for = now - self._down_since
        reason = f"{type(error).__name__}: {error}"
        if first:
            log.error("%s: Service Bus namespace %s is unreachable (%s); reconnecting at %s (next at %s, in %.0f s)",
                      self.label, self.namespace, reason, SCHEDULE_TEXT, clock(delay), delay)
        elif report:
            log.error("%s: Service Bus namespace %s still unreachable after %.0f s (attempt %d of the schedule %s; "
                      "last: %s); next retry at %s, in %.0f s", self.label, self.namespace, down_for, attempt,
                      SCHEDULE_TEXT, reason, clock(delay), delay)
        else:
            log.debug("%s: receive failed (%s); retrying in %.1f s", self.label, reason, delay)

    def unreachable(self, reason: str, sdk_retry: str) -> None:
        """The watchdog's probe failed while the SDK still retries: report the outage now, not after its retries."""
        with self._lock:
            if self._down_since is not None:
                return
            now = time.monotonic()
            self._down_since = self._last_report = now
        log.error("%s: Service Bus namespace %s is unreachable (%s); the Service Bus client retries (%s), then the "
                  "host reconnects at %s until it answers", self.label, self.namespace, reason, sdk_retry,
                  SCHEDULE_TEXT)

    def ok(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since, self._reported_attempt = self._down_since, None, 0
        if since is not None:
            log.info("%s: Service Bus namespace %s reachable again after %.0f s; receiving", self.label,
                     self.namespace, time.monotonic() - since)
