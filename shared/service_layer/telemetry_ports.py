"""The telemetry ports: what the message handler reports about each event (``shared.adapters.telemetry`` turns the
reports into spans and metrics; these bases report nowhere)."""
from __future__ import annotations

import contextlib


class EventTrace:
    """What the message handler reports about one event while it handles it. This base reports nowhere (telemetry
    off, and the unit tests); ``shared.adapters.telemetry`` turns the reports into a span and metrics. Every value
    passed here is an id, an outcome or a reason built by the app, never a secret."""

    def set_event(self, event) -> None:
        """The parsed event (a CustomerEvent): its ids, type and customer."""

    def set_outcome(self, outcome: str, *, kind: str | None = None, reason: str | None = None) -> None:
        """How the event ended: applied, duplicate, stale, rejected, failed, error or retry-scheduled."""

    def retry_scheduled(self, attempt: int, delay_seconds: float) -> None:
        """A copy was scheduled for a later attempt."""

    def dead_letter_bound(self, kind: str) -> None:
        """This message is on its way to the dead-letter queue (``kind``: rejected, permanent, budget-spent,
        unscheduled)."""

    def note(self, problem: str) -> None:
        """Something about the event worth seeing beside it, e.g. an ignored traceparent and why."""


class Telemetry:
    """Traces and metrics of events. This base records nothing: handlers built without telemetry use it."""

    def event(self, message, trace_context=None) -> "contextlib.AbstractContextManager[EventTrace]":
        """Around the handling of one message (an InboundMessage): the event's span, child of ``trace_context``
        (the sender's TraceContext) when there is one."""
        return contextlib.nullcontext(EventTrace())

    def current_trace_context(self):
        """The TraceContext to put on an outgoing event (its ``traceparent``/``tracestate``), or None."""
        return None
