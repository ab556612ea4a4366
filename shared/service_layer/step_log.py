"""One log line per step: who (customer, event), what (step), how it went (outcome) and how long it took.

Each line carries the fields twice: as ``extra`` attributes for structured sinks (Application Insights turns them
into custom dimensions) and inside the message text, so a plain console or a grep reads the same thing.
:class:`StepLog` binds the ids of one attempt once, so a use case writes ``log.step("auth0.create_application")``
and every line of the attempt carries the same customer, event and message ids. Only ids, outcomes and error
reasons are logged; reasons come from :class:`~shared.domain.errors.ProvisioningError`, whose messages never hold
a secret.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..domain.errors import ProvisioningError

LOGGER_NAME = "customer_provisioning"
log = logging.getLogger(LOGGER_NAME)


@dataclass
class StepResult:
    """What a step reports about itself; ``outcome`` defaults to ``ok``."""
    outcome: str = "ok"
    detail: str = ""


def error_reason(exc: BaseException) -> str:
    """The reason to log and record for a failure. Only our own error kinds carry their message: any other
    exception is named by type alone, because its text is not vetted to be free of secrets."""
    if isinstance(exc, ProvisioningError):
        return exc.reason
    return f"internal error: {type(exc).__name__}"


@dataclass(frozen=True)
class StepLog:
    """The log of one attempt at one event: every line names the same customer, event and message."""
    customer_id: str | None
    event_id: str | None
    message_id: str | None = None

    def emit(self, step: str, outcome: str, duration_ms: int | None = None, *, detail: str = "",
             level: int = logging.INFO, exc_info: bool = False, **fields) -> None:
        parts = [f"customer={self.customer_id or '-'}", f"event={self.event_id or '-'}", f"step={step}",
                 f"outcome={outcome}"]
        if duration_ms is not None:
            parts.append(f"duration_ms={duration_ms}")
        if detail:
            parts.append(detail)
        extra = {"customer_id": self.customer_id, "event_id": self.event_id, "step": step, "outcome": outcome,
                 "duration_ms": duration_ms, "message_id": self.message_id, **fields}
        # %s keeps the text verbatim even when it holds a '%'.
        log.log(level, "%s", " ".join(parts), extra=extra, exc_info=exc_info)

    @contextmanager
    def step(self, name: str) -> Iterator[StepResult]:
        """Time the block and log one line for it; a failure is logged with its reason and re-raised."""
        result = StepResult()
        started = time.perf_counter()
        try:
            yield result
        except Exception as exc:
            self.emit(name, "error", _ms(started), detail=f"error={type(exc).__name__} reason={error_reason(exc)!r}",
                      level=logging.WARNING)
            raise
        self.emit(name, result.outcome, _ms(started), detail=result.detail)


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
