"""From a queue message to the service layer: parse, apply, and say what happened.

Kept apart from the trigger so the same code runs under the Functions host, the local host and tests, and apart
from ``provisioning`` because it deals with raw bytes and message metadata, not with customers.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..domain import retry_policy as rp
from ..domain.errors import InvalidEvent, MetadataCollision, ProvisioningError, RetryBudgetSpent, TransientError
from ..domain.events import parse_event, peek_identity, peek_trace_context
from .telemetry_ports import EventTrace, Telemetry
from .outbox import ResultsPending
from .step_log import StepLog


@dataclass(frozen=True)
class InboundMessage:
    body: bytes
    message_id: str | None = None
    delivery_count: int | None = None
    session_id: str | None = None
    enqueued_time: dt.datetime | None = None
    application_properties: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    content_type: str | None = None
    subject: str | None = None


#: what handle_message returns when it scheduled a retry instead of applying the event
RETRY_SCHEDULED = "retry-scheduled"
#: what it returns when an applied event's result event could not be sent within the retry budget
RESULTS_PENDING = "results-pending"


@dataclass(frozen=True)
class RetryScheduled:
    result: str
    attempt: int
    delay_seconds: float
    reason: str


def handle_message(service, message: InboundMessage, *, type_prefix: str = "", scheduler=None,
                   policy: rp.RetryPolicy | None = None, now: dt.datetime | None = None,
                   telemetry: Telemetry | None = None):
    """Apply one message. Returns the service's Outcome, or RetryScheduled when a transient failure was handed to
    ``scheduler`` for a later attempt. Raises PermanentError (InvalidEvent, UnknownProfile, RetryBudgetSpent when
    the budget is spent, or a refusal no retry can fix), which the trigger dead-letters at once; or TransientError
    when no retry could be scheduled (no scheduler, or Service Bus refused), which the trigger leaves to the host's
    redeliveries. Settlement itself is the trigger's business, not this layer's. ``telemetry`` traces it: one span
    per message, a child of the sender's ``traceparent`` when the event carries one."""
    started = time.monotonic()
    telemetry = telemetry or Telemetry()
    try:
        event = parse_event(message.body, type_prefix=type_prefix)
    except InvalidEvent as exc:
        with telemetry.event(message, peek_trace_context(message.body)) as trace:
            customer_id, event_id, event_type = peek_identity(message.body)
            trace.set_outcome("rejected", kind="permanent", reason=exc.message)
            if _first_delivery(message):
                trace.dead_letter_bound("rejected")
            # A name that collides with the message's metadata made the message id the sender's: not recorded.
            message_id = None if isinstance(exc, MetadataCollision) else message.message_id
            service.record_rejection(reason=exc.message, message_id=message_id, customer_id=customer_id,
                                     event_id=event_id, event_type=event_type)
            StepLog(customer_id, event_id, message_id).emit("event", "rejected", level=logging.WARNING,
                                                            detail=f"reason={exc.message!r}")
            raise
    with telemetry.event(message, event.trace_context) as trace:
        trace.set_event(event)
        return _apply(service, event, message, trace, scheduler=scheduler, policy=policy, now=now, started=started)


def _apply(service, event, message: InboundMessage, trace: EventTrace, *, scheduler, policy, now, started):
    log = StepLog(event.customer_id, event.event_id, message.message_id)
    if event.trace_context_problem:
        # The event is applied all the same (W3C Trace Context: an unreadable parent starts a new trace); the sender
        # should hear that its trace was cut here.
        trace.note(event.trace_context_problem)
        log.emit("event", "trace-context-ignored", level=logging.WARNING,
                 detail=f"reason={event.trace_context_problem!r}")
    if message.session_id and message.session_id != event.customer_id:
        # Ordering per customer relies on SessionId = customerId; say so, but the ledger's stale guard still
        # keeps the outcome right.
        log.emit("event", "session-mismatch", level=logging.WARNING,
                 detail=f"session id {message.session_id!r} is not the customer id")
    try:
        outcome = service.handle(event, message_id=message.message_id)
    except ProvisioningError as exc:
        kind = "transient" if exc.transient else "permanent"
        log.emit("event", "failed", _ms(started), level=logging.WARNING if exc.transient else logging.ERROR,
                 detail=f"type={event.type} kind={kind} reason={exc.reason!r}", kind=kind)
        trace.set_outcome("failed", kind=kind, reason=exc.reason)
        if isinstance(exc, TransientError) and scheduler is not None:
            try:
                return _schedule_retry(scheduler, policy or rp.RetryPolicy(), message, exc, log,
                                       now or dt.datetime.now(dt.timezone.utc), trace)
            except RetryBudgetSpent as spent:
                if isinstance(exc, ResultsPending):
                    # Applied and recorded: only its result event is not sent. Dead-lettering would report an
                    # applied event as failed; the outbox row stays for the sweep instead.
                    log.emit("event", RESULTS_PENDING, level=logging.ERROR,
                             detail=f"type={event.type} the event is applied; its result event stays in the outbox "
                                    f"for the sweep ({exc.reason})")
                    return RetryScheduled(RESULTS_PENDING, 0, 0.0, exc.reason)
                if hasattr(service, "record_dead_letter"):
                    service.record_dead_letter(event, message_id=message.message_id, error=spent)
                raise
        if _first_delivery(message):
            trace.dead_letter_bound("permanent" if not exc.transient else "unscheduled")
        raise
    except Exception as exc:
        # A bug, not a service's answer: let the host abandon (and, repeated, dead-letter) the message, and say
        # where. The type only: an unexpected exception's text is not known to be free of secrets.
        log.emit("event", "error", _ms(started), level=logging.ERROR, exc_info=True,
                 detail=f"type={event.type} error={type(exc).__name__}")
        trace.set_outcome("error", kind="internal", reason=f"internal error: {type(exc).__name__}")
        raise
    log.emit("event", outcome.result, _ms(started),
             detail=f"type={event.type} status={outcome.status or '-'}" + (f" {outcome.detail}" if outcome.detail
                                                                              else ""))
    trace.set_outcome(outcome.result)
    return outcome


def _first_delivery(message: InboundMessage) -> bool:
    """Counted once per message, not once per redelivery on its way to the dead-letter queue (a message the host
    redelivers after a crash before this point is not counted: the metric errs low, never double)."""
    return (message.delivery_count or 1) <= 1


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


class MessageHandler:
    """Everything one message needs, put together once by the composition root (``shared.bootstrap``)."""

    def __init__(self, service, *, scheduler=None, policy: rp.RetryPolicy | None = None, type_prefix: str = "",
                 telemetry: Telemetry | None = None):
        self.service = service
        self.scheduler = scheduler
        self.policy = policy or rp.RetryPolicy()
        self.type_prefix = type_prefix
        self.telemetry = telemetry or Telemetry()

    def __call__(self, message: InboundMessage):
        return handle_message(self.service, message, type_prefix=self.type_prefix, scheduler=self.scheduler,
                              policy=self.policy, telemetry=self.telemetry)


def retry_copy_id(original: str, attempt: int) -> str:
    """The message id of retry copy ``attempt`` of the message ``original``: derived from the whole original id (two
    ids that share a prefix never share a copy id) and deterministic, so a crash after scheduling but before the
    host completes the message schedules the same id again and duplicate detection drops the second copy."""
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"retry-{digest}-{attempt}"


@dataclass(frozen=True)
class RetryState:
    attempt: int  # retries scheduled before this delivery
    first_attempt: dt.datetime
    original_id: str
    trusted: bool  # False: the properties were not the app's own, and the budget starts from this delivery


def retry_state(message: InboundMessage, policy: rp.RetryPolicy, now: dt.datetime) -> RetryState:
    """What the retry properties say, if the app wrote them. A copy the app scheduled carries the id
    :func:`retry_copy_id` derives from its properties; any other message carrying retry properties (a sender's,
    or one a person edited) gets no say over the budget: it starts again from this delivery."""
    fresh = RetryState(0, message.enqueued_time or now, message.message_id or "", False)
    props = message.application_properties or {}
    if rp.ATTEMPT_PROPERTY not in props and rp.ORIGINAL_ID_PROPERTY not in props:
        return RetryState(0, fresh.first_attempt, fresh.original_id, True)
    attempt, original = props.get(rp.ATTEMPT_PROPERTY), props.get(rp.ORIGINAL_ID_PROPERTY)
    first = _parse_time(props.get(rp.FIRST_ATTEMPT_PROPERTY))
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 1 <= attempt <= policy.max_attempts:
        return fresh
    if not isinstance(original, str) or not 0 < len(original) <= 512 or first is None:
        return fresh
    if message.message_id != retry_copy_id(original, attempt):
        return fresh
    if not now - dt.timedelta(seconds=policy.max_total_seconds + 3600) <= first <= now + dt.timedelta(minutes=5):
        return fresh
    return RetryState(attempt, first, original, True)


def _schedule_retry(scheduler, policy: rp.RetryPolicy, message: InboundMessage, exc: TransientError,
                    log: StepLog, now: dt.datetime, trace: EventTrace | None = None) -> RetryScheduled:
    trace = trace or EventTrace()
    state = retry_state(message, policy, now)
    if not state.trusted:
        log.emit("retry", "untrusted-properties", level=logging.WARNING,
                 detail="retry properties the app did not write: the budget starts from this delivery")
    attempt, first = state.attempt + 1, state.first_attempt
    delay = policy.next_delay(attempt, first, now, retry_after=exc.retry_after)
    if delay is None:
        log.emit("retry", "budget-spent", level=logging.ERROR, attempt=attempt - 1,
                 detail=f"attempts={attempt - 1} reason={exc.reason!r}")
        if _first_delivery(message):
            trace.dead_letter_bound("budget-spent")
        raise RetryBudgetSpent(exc, attempt - 1) from exc
    original = state.original_id or log.event_id or ""
    scheduler.schedule_retry(message, delay_seconds=delay, message_id=retry_copy_id(original, attempt), properties={
        rp.ATTEMPT_PROPERTY: attempt,
        rp.FIRST_ATTEMPT_PROPERTY: first.astimezone(dt.timezone.utc).isoformat(),
        rp.ORIGINAL_ID_PROPERTY: original,
        rp.LAST_ERROR_PROPERTY: exc.reason[:500],
    })
    log.emit("retry", "scheduled", level=logging.WARNING,
             detail=f"attempt={attempt} delay_s={delay:.1f} reason={exc.reason!r}", attempt=attempt,
             delay_seconds=round(delay, 1))
    trace.retry_scheduled(attempt, delay)
    trace.set_outcome(RETRY_SCHEDULED, kind="transient", reason=exc.reason)
    return RetryScheduled(RETRY_SCHEDULED, attempt, delay, exc.reason)


def _parse_time(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (str, bytes)) and len(value) <= 64:
        try:
            parsed = dt.datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
        except (ValueError, UnicodeDecodeError, OverflowError):
            return None
    return None
