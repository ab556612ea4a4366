"""From a received azure-servicebus message to the ``func.ServiceBusMessage`` the Python worker hands a function.

The worker builds it from the invocation's data and *trigger metadata* (``MessageId``, ``DeliveryCount``,
``ApplicationProperties``...) with ``ServiceBusMessageInConverter``; we produce the same metadata from the SDK's
message and go through the same converter, so every property (and ``msg.metadata``) reads as under ``func start``.

Two values differ between the Python SDK and the .NET SDK the Functions host uses, and the host's are reported:
- ``DeliveryCount``: the AMQP header counts *prior* deliveries (0 on the first); .NET adds 1 on receive, so the
  host reports 1 on the first delivery. We report SDK value + 1 (a missing header counts as 0).
- application property keys and string values arrive as ``bytes`` in the Python SDK; the host passes strings.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessage, ServiceBusMessageInConverter
from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus.amqp import AmqpMessageBodyType

from .logs import dotnet_utc


def host_delivery_count(message: ServiceBusReceivedMessage) -> int:
    return (message.delivery_count or 0) + 1


def message_body(message: ServiceBusReceivedMessage) -> bytes:
    """The payload as bytes, whatever the AMQP body section (the host passes data sections through as bytes)."""
    raw = message.raw_amqp_message
    if raw.body_type == AmqpMessageBodyType.DATA:
        return b"".join(bytes(section) for section in raw.body)
    value = raw.body
    if raw.body_type == AmqpMessageBodyType.SEQUENCE:
        value = list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(_plain(value), default=str).encode("utf-8")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _plain(value: Any) -> Any:
    """bytes -> str recursively, so properties read like the host's JSON."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def application_properties(message: ServiceBusReceivedMessage) -> dict[str, Any]:
    return _plain(dict(message.application_properties or {}))


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _safe(getter):
    # Some SDK properties compute from headers (expires_at_utc = enqueued + TTL) and can overflow for
    # "infinite" TTLs; a property we cannot read is simply left out, as the host leaves out nulls.
    try:
        return getter()
    except (OverflowError, ValueError, AttributeError, TypeError):
        return None


def trigger_metadata(message: ServiceBusReceivedMessage, function_name: str,
                     session_locked_until: dt.datetime | None = None) -> dict[str, meta.Datum]:
    props = application_properties(message)
    props_json = json.dumps(props, default=str)
    ttl = _safe(lambda: message.time_to_live)
    state = _safe(lambda: message.state)
    strings = {
        "MessageId": _text(message.message_id),
        "SessionId": _text(message.session_id),
        "CorrelationId": _text(message.correlation_id),
        "ContentType": _text(message.content_type),
        "Label": _text(message.subject),
        "Subject": _text(message.subject),
        "LockToken": _text(message.lock_token),
        "ReplyTo": _text(message.reply_to),
        "ReplyToSessionId": _text(message.reply_to_session_id),
        "To": _text(message.to),
        "PartitionKey": _text(message.partition_key),
        "DeadLetterSource": _text(message.dead_letter_source),
        "DeadLetterReason": _text(message.dead_letter_reason),
        "DeadLetterErrorDescription": _text(message.dead_letter_error_description),
        # The converter parses "%S" as any number of seconds; hh:mm:ss would stop at 23 hours.
        "TimeToLive": str(int(ttl.total_seconds())) if ttl is not None else None,
    }
    times = {
        "EnqueuedTimeUtc": _safe(lambda: message.enqueued_time_utc),
        "ExpiresAtUtc": _safe(lambda: message.expires_at_utc),
        "LockedUntil": _safe(lambda: message.locked_until_utc) or session_locked_until,
        "ScheduledEnqueueTimeUtc": _safe(lambda: message.scheduled_enqueue_time_utc),
    }
    ints = {
        "DeliveryCount": host_delivery_count(message),
        "SequenceNumber": message.sequence_number,
        "EnqueuedSequenceNumber": message.enqueued_sequence_number,
        "State": int(getattr(state, "value", state)) if state is not None else None,
    }
    metadata: dict[str, meta.Datum] = {}
    for key, value in strings.items():
        if value is not None:
            metadata[key] = meta.Datum(value, "string")
    for key, value in times.items():
        if value is not None:
            metadata[key] = meta.Datum(_utc(value).isoformat(), "string")
    for key, value in ints.items():
        if value is not None:
            metadata[key] = meta.Datum(int(value), "int")
    metadata["ApplicationProperties"] = meta.Datum(props_json, "json")
    metadata["UserProperties"] = meta.Datum(props_json, "json")
    metadata["sys"] = meta.Datum(json.dumps({
        "MethodName": function_name,
        "UtcNow": dt.datetime.now(dt.timezone.utc).isoformat(),
        "RandGuid": str(uuid.uuid4()),
    }), "json")
    return metadata


def to_functions_message(message: ServiceBusReceivedMessage, function_name: str,
                         session_locked_until: dt.datetime | None = None) -> ServiceBusMessage:
    return ServiceBusMessageInConverter.decode_single_message(
        meta.Datum(message_body(message), "bytes"),
        trigger_metadata=trigger_metadata(message, function_name, session_locked_until))


def trigger_details(message: ServiceBusReceivedMessage, session_locked_until: dt.datetime | None = None) -> str:
    """The host's per-invocation ``Trigger Details`` line for a Service Bus message."""
    return (f"Trigger Details: MessageId: {_text(message.message_id)}, "
            f"SequenceNumber: {message.sequence_number}, "
            f"DeliveryCount: {host_delivery_count(message)}, "
            f"EnqueuedTimeUtc: {dotnet_utc(_safe(lambda: message.enqueued_time_utc))}, "
            f"LockedUntilUtc: {dotnet_utc(_safe(lambda: message.locked_until_utc) or session_locked_until)}, "
            f"SessionId: {_text(message.session_id) or '(null)'}")
