"""From a queue message to the service layer: parse, apply, and say what happened.

Kept apart from the trigger so the same code runs under the Functions host, the local host and tests, and apart
from ``provisioning`` because it deals with raw bytes and message metadata, not with customers.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..domain import retry_policy as rp
from ..domain.errors import InvalidEvent, ProvisioningError, TransientError
from ..domain.events import CUSTOMER_ID, parse_event

log = logging.getLogger("customer_provisioning.messages")


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


@dataclass(frozen=True)
class RetryScheduled:
    result: str
    attempt: int
    delay_seconds: float
    reason: str


def _peek(body: bytes) -> tuple[str | None, str | None, str | None]:
    """Best-effort customer id, event id and type of an event that failed validation, to file the rejection
    under the right customer. Only values that are safe as ledger keys are returned."""
    try:
        doc = json.loads(body)
        data = doc.get("data") if isinstance(doc, dict) else None
        cid = data.get("customerId") if isinstance(data, dict) else None
        eid, etype = doc.get("id"), doc.get("type")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None, None, None
    cid = cid if isinstance(cid, str) and CUSTOMER_ID.match(cid) else None
    eid = eid if isinstance(eid, str) and 0 < len(eid) <= 128 and eid.isprintable() else None
    etype = etype if isinstance(etype, str) and len(etype) <= 200 and etype.isprintable() else None
    return cid, eid, etype


def handle_message(service, message: InboundMessage, *, type_prefix: str = "", scheduler=None,
                   policy: rp.RetryPolicy | None = None, now: dt.datetime | None = None):
    """Apply one message. Returns the service's Outcome, or RetryScheduled when a transient failure was handed to
    ``scheduler`` for a later attempt; raises PermanentError, or TransientError when no retry could be scheduled
    (no scheduler, budget spent, or Service Bus refused): the host then abandons the message, and the queue's
    MaxDeliveryCount moves it to the dead-letter queue."""
    started = time.monotonic()
    try:
        event = parse_event(message.body, type_prefix=type_prefix)
    except InvalidEvent as exc:
        customer_id, event_id, event_type = _peek(message.body)
        service.record_rejection(reason=exc.message, message_id=message.message_id, customer_id=customer_id,
                                 event_id=event_id, event_type=event_type)
        log.warning("message=%s customer=%s event=%s step=parse outcome=rejected reason=%s",
                    message.message_id, customer_id or "-", event_id or "-", exc.message,
                    extra={"message_id": message.message_id, "customer_id": customer_id, "event_id": event_id,
                           "step": "parse", "outcome": "rejected", "reason": exc.message})
        raise
    if message.session_id and message.session_id != event.customer_id:
        # Ordering per customer relies on SessionId = customerId; say so, but the ledger's stale guard still
        # keeps the outcome right.
        log.warning("message=%s customer=%s event=%s session id %r is not the customer id",
                    message.message_id, event.customer_id, event.event_id, message.session_id)
    fields = {"message_id": message.message_id, "customer_id": event.customer_id, "event_id": event.event_id}
    try:
        outcome = service.handle(event, message_id=message.message_id)
    except ProvisioningError as exc:
        duration = (time.monotonic() - started) * 1000
        kind = "transient" if exc.transient else "permanent"
        log.error("message=%s customer=%s event=%s step=event outcome=failed kind=%s duration_ms=%.0f reason=%s",
                  message.message_id, event.customer_id, event.event_id, kind, duration, exc.reason,
                  extra={**fields, "step": "event", "outcome": "failed", "kind": kind,
                         "duration_ms": round(duration), "reason": exc.reason})
        if isinstance(exc, TransientError) and scheduler is not None:
            return _schedule_retry(scheduler, policy or rp.RetryPolicy(), message, exc, fields,
                                   now or dt.datetime.now(dt.timezone.utc))
        raise
    except Exception as exc:
        # A bug, not a service's answer: let the host abandon (and, repeated, dead-letter) the message, and say
        # where. The type only: an unexpected exception's text is not known to be free of secrets.
        log.exception("message=%s customer=%s event=%s step=event outcome=error error=%s",
                      message.message_id, event.customer_id, event.event_id, type(exc).__name__,
                      extra={**fields, "step": "event", "outcome": "error"})
        raise
    duration = (time.monotonic() - started) * 1000
    log.info("message=%s customer=%s event=%s step=event outcome=%s status=%s duration_ms=%.0f",
             message.message_id, event.customer_id, event.event_id, outcome.result, outcome.status, duration,
             extra={**fields, "step": "event", "outcome": outcome.result, "status": outcome.status,
                    "duration_ms": round(duration)})
    return outcome


def _schedule_retry(scheduler, policy: rp.RetryPolicy, message: InboundMessage, exc: TransientError,
                    fields: dict, now: dt.datetime) -> RetryScheduled:
    props = message.application_properties or {}
    try:
        attempt = int(props.get(rp.ATTEMPT_PROPERTY, 0)) + 1
    except (TypeError, ValueError):
        attempt = 1
    first = _parse_time(props.get(rp.FIRST_ATTEMPT_PROPERTY)) or message.enqueued_time or now
    delay = policy.next_delay(attempt, first, now, retry_after=exc.retry_after)
    if delay is None:
        log.error("message=%s customer=%s event=%s step=retry outcome=budget-spent attempts=%d reason=%s",
                  message.message_id, fields["customer_id"], fields["event_id"], attempt - 1, exc.reason,
                  extra={**fields, "step": "retry", "outcome": "budget-spent", "attempt": attempt - 1})
        raise exc
    original = str(props.get(rp.ORIGINAL_ID_PROPERTY) or message.message_id or fields["event_id"])
    # Deterministic per attempt: if we crash after scheduling but before the host completes the message, the
    # redelivery schedules the same id again and duplicate detection drops the second copy.
    retry_id = f"{original[:100]}:retry:{attempt}"
    scheduler.schedule_retry(message, delay_seconds=delay, message_id=retry_id, properties={
        rp.ATTEMPT_PROPERTY: attempt,
        rp.FIRST_ATTEMPT_PROPERTY: first.astimezone(dt.timezone.utc).isoformat(),
        rp.ORIGINAL_ID_PROPERTY: original,
        rp.LAST_ERROR_PROPERTY: exc.reason[:500],
    })
    log.warning("message=%s customer=%s event=%s step=retry outcome=scheduled attempt=%d delay_s=%.1f reason=%s",
                message.message_id, fields["customer_id"], fields["event_id"], attempt, delay, exc.reason,
                extra={**fields, "step": "retry", "outcome": "scheduled", "attempt": attempt,
                       "delay_seconds": round(delay, 1)})
    return RetryScheduled(RETRY_SCHEDULED, attempt, delay, exc.reason)


def _parse_time(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (str, bytes)):
        try:
            parsed = dt.datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    return None
