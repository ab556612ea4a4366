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

from ..domain.errors import InvalidEvent, ProvisioningError
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


def handle_message(service, message: InboundMessage, *, type_prefix: str = ""):
    """Apply one message. Returns the service's Outcome; raises TransientError or PermanentError."""
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
    try:
        outcome = service.handle(event, message_id=message.message_id)
    except ProvisioningError as exc:
        duration = (time.monotonic() - started) * 1000
        kind = "transient" if exc.transient else "permanent"
        log.error("message=%s customer=%s event=%s step=event outcome=failed kind=%s duration_ms=%.0f reason=%s",
                  message.message_id, event.customer_id, event.event_id, kind, duration, exc.reason,
                  extra={"message_id": message.message_id, "customer_id": event.customer_id,
                         "event_id": event.event_id, "step": "event", "outcome": "failed", "kind": kind,
                         "duration_ms": round(duration), "reason": exc.reason})
        raise
    duration = (time.monotonic() - started) * 1000
    log.info("message=%s customer=%s event=%s step=event outcome=%s status=%s duration_ms=%.0f",
             message.message_id, event.customer_id, event.event_id, outcome.result, outcome.status, duration,
             extra={"message_id": message.message_id, "customer_id": event.customer_id, "event_id": event.event_id,
                    "step": "event", "outcome": outcome.result, "status": outcome.status,
                    "duration_ms": round(duration)})
    return outcome
