"""A dead-lettered message as the tool sees it, read from an azure-servicebus received (or peeked) message.

The SDK hands out application properties with ``bytes`` keys and ``bytes`` string values, timestamps as
milliseconds and the body as an iterator of data sections; :class:`DeadLetter` turns all of that into plain Python
once, so filters, tables, exports and replays read the same fields.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Iterator

from shared.adapters.servicebus_client import portal_delivery_count
from shared.domain.retry_policy import ORIGINAL_ID_PROPERTY

from .safe_json import _utc, iso, jsonable, load_json  # noqa: F401 - iso and jsonable: this module's API too

#: application properties the service sets when it dead-letters a message; a replayed copy must not carry them
DEAD_LETTER_PROPERTIES = ("DeadLetterReason", "DeadLetterErrorDescription")
#: application properties this tool writes on a replayed copy
REPLAY_COUNT = "replay-count"
REPLAY_ORIGINAL_MESSAGE_ID = "replay-original-message-id"
PEEK_PAGE = 100
#: the app's retry copies carry the sender's message id in this property
APP_RETRY_ORIGINAL_MESSAGE_ID = ORIGINAL_ID_PROPERTY


def _text(value: Any) -> Any:
    """AMQP strings arrive as bytes: decode what is UTF-8, keep the rest as bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    return value


def _get(msg: Any, name: str) -> Any:
    """A computed property of the SDK's message, or None when computing it fails (a time-to-live of
    TimeSpan.MaxValue put on a late enqueued time is past year 9999: the SDK's expires_at_utc overflows)."""
    try:
        return getattr(msg, name)
    except (OverflowError, ValueError, OSError):
        return None


@dataclass(frozen=True)
class EventFields:
    """What the body says about the event, read best-effort (a dead-lettered body may be anything)."""
    customer_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    event_time: str | None = None


def read_event_fields(body: bytes | None) -> EventFields:
    """Never raises, whatever the body: see :func:`~opstool.safe_json.load_json`."""
    doc, _ = load_json(body) if body else (None, None)
    if not isinstance(doc, dict):
        return EventFields()
    data = doc.get("data")

    def short_text(value: Any, limit: int = 200) -> str | None:
        return value if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable() else None

    return EventFields(
        customer_id=short_text(data.get("customerId"), 64) if isinstance(data, dict) else None,
        event_id=short_text(doc.get("id"), 128),
        event_type=short_text(doc.get("type")),
        event_time=short_text(doc.get("time"), 40),
    )


@dataclass(frozen=True)
class DeadLetter:
    sequence_number: int
    message_id: str | None
    body: bytes | None                       # the data sections joined; None for value/sequence bodies
    body_type: str                           # "data", "value" or "sequence"
    body_value: Any = None                   # the AMQP value or sequence body (rare: not what the CRM sends)
    correlation_id: str | None = None
    content_type: str | None = None
    subject: str | None = None
    session_id: str | None = None
    reply_to: str | None = None
    reply_to_session_id: str | None = None
    to: str | None = None
    time_to_live: dt.timedelta | None = None
    enqueued_time: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    #: as the portal and .NET count it: the first delivery is 1 (``portal_delivery_count``)
    delivery_count: int | None = None
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None
    dead_letter_source: str | None = None
    application_properties: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)
    event: EventFields = field(default_factory=EventFields)

    @property
    def replay_count(self) -> int:
        value = self.application_properties.get(REPLAY_COUNT)
        if value is None or isinstance(value, bool):
            return 0
        try:
            return max(0, int(value))
        except (TypeError, ValueError, OverflowError):  # not a number, NaN, infinity (a double is a valid property)
            return 0

    @property
    def original_message_id(self) -> str | None:
        """The message id the sender gave the event: kept by earlier replays, or by the app's own retry copies
        (``retry-original-message-id``), else this message's id."""
        for name in (REPLAY_ORIGINAL_MESSAGE_ID, APP_RETRY_ORIGINAL_MESSAGE_ID):
            value = self.application_properties.get(name)
            if isinstance(value, str) and value:
                return value
        return self.message_id

    @property
    def body_problem(self) -> str | None:
        """Why the body is not a JSON document (not UTF-8, empty, nested too deep, not JSON), or None."""
        return load_json(self.body if self.body is not None else json.dumps(jsonable(self.body_value)))[1]

    def body_text(self) -> tuple[str, str]:
        """(text, encoding): the body as UTF-8 text, or base64 when it is not text; JSON for value bodies."""
        if self.body is None:
            return json.dumps(jsonable(self.body_value)), "json"
        try:
            return self.body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(self.body).decode("ascii"), "base64"

    @classmethod
    def from_message(cls, msg: Any) -> "DeadLetter":
        """From an azure.servicebus ServiceBusReceivedMessage (peeked or received)."""
        raw = msg.raw_amqp_message
        body_type = getattr(msg.body_type, "value", str(msg.body_type)).lower()
        body: bytes | None = None
        value = None
        if body_type == "data":
            content = msg.body
            body = content if isinstance(content, bytes) else b"".join(bytes(part) for part in content)
        else:
            value = msg.body if body_type == "value" else [list(part) for part in msg.body]
        props = {str(_text(k)): _text(v) for k, v in (msg.application_properties or {}).items()}
        annotations = {str(_text(k)): _text(v) for k, v in (raw.annotations or {}).items()}
        return cls(
            sequence_number=int(msg.sequence_number),
            message_id=_text(msg.message_id) if msg.message_id is not None else None,
            body=body, body_type=body_type, body_value=value,
            correlation_id=_text(msg.correlation_id), content_type=_text(msg.content_type),
            subject=_text(msg.subject), session_id=_text(msg.session_id), reply_to=_text(msg.reply_to),
            reply_to_session_id=_text(msg.reply_to_session_id), to=_text(msg.to),
            time_to_live=_get(msg, "time_to_live"), enqueued_time=_utc(_get(msg, "enqueued_time_utc")),
            expires_at=_utc(_get(msg, "expires_at_utc")),
            delivery_count=portal_delivery_count(msg.delivery_count),
            dead_letter_reason=msg.dead_letter_reason, dead_letter_description=msg.dead_letter_error_description,
            dead_letter_source=msg.dead_letter_source,
            application_properties=props, annotations=annotations,
            event=read_event_fields(body),
        )

    def properties(self) -> dict[str, Any]:
        """The broker and sender properties, JSON-ready (application properties apart)."""
        return {
            "message_id": self.message_id, "correlation_id": self.correlation_id,
            "content_type": self.content_type, "subject": self.subject, "session_id": self.session_id,
            "reply_to": self.reply_to, "reply_to_session_id": self.reply_to_session_id, "to": self.to,
            "time_to_live_seconds": self.time_to_live.total_seconds() if self.time_to_live else None,
        }

    def broker_annotations(self) -> dict[str, Any]:
        """What the broker says about the message, JSON-ready; ``raw`` holds every message annotation as sent."""
        return {
            "sequence_number": self.sequence_number, "enqueued_time_utc": iso(self.enqueued_time),
            "expires_at_utc": iso(self.expires_at), "delivery_count": self.delivery_count,
            "dead_letter_reason": self.dead_letter_reason,
            "dead_letter_error_description": self.dead_letter_description,
            "dead_letter_source": self.dead_letter_source,
            "raw": jsonable(self.annotations),
        }


def peek_pages(receiver: Any, *, start: int = 1, page: int = PEEK_PAGE) -> Iterator[list[DeadLetter]]:
    """Every message of the receiver's queue from sequence number ``start`` on, a page at a time, in sequence-number
    order, by browsing (peek): nothing is locked, counted as a delivery or changed. The receiver is one opened on
    the dead-letter sub-queue."""
    next_seq = max(1, start)
    while True:
        batch = receiver.peek_messages(max_message_count=page, sequence_number=next_seq)
        if not batch:
            return
        yield [DeadLetter.from_message(msg) for msg in batch]
        next_seq = max(m.sequence_number for m in batch) + 1


def peek_one(receiver: Any, sequence_number: int) -> DeadLetter | None:
    batch = receiver.peek_messages(max_message_count=1, sequence_number=sequence_number)
    if batch and batch[0].sequence_number == sequence_number:
        return DeadLetter.from_message(batch[0])
    return None
