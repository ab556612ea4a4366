"""What the Functions host puts into an InvocationRequest for a Service Bus or timer trigger.

The shapes are those of the .NET host with the Service Bus extension 5.x, converted to RPC values as the host
converts them (``ToRpc``): strings as TypedData ``string``; ints, longs, dates, dictionaries and objects as
``json`` serialised by Newtonsoft.Json's defaults; string arrays as ``collection_string`` without null or empty
entries; long arrays as ``collection_sint64``. Null values are left out, and so is ``sys``. Microsoft's worker
library then turns these into the ``func.ServiceBusMessage`` or ``func.TimerRequest`` the function receives.

Where the .NET types cannot be recovered from what the Python SDK hands this host, the nearest is sent, and it says
so here: the SDK decodes AMQP strings, symbols and binaries all as ``bytes`` (a property's bytes that are valid
UTF-8 go as text, other bytes as base64, which is how Newtonsoft writes a ``byte[]``), and AMQP timestamps as
milliseconds (sent as that number, where .NET would write a date).
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import uuid
from typing import Any, Iterable

from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus.amqp import AmqpMessageBodyType

# The keys the extension adds for one message (ServiceBusTriggerBindingStrategy); a batch has them with "Array".
STRING_KEYS = ("MessageId", "ContentType", "ReplyTo", "To", "Subject", "Label", "CorrelationId", "SessionId",
               "ReplyToSessionId", "PartitionKey", "TransactionPartitionKey", "DeadLetterSource", "LockToken")
ACTION_KEYS = ("MessageReceiver", "MessageSession", "MessageActions", "SessionActions", "ReceiveActions")
DOTNET_MAX = "9999-12-31T23:59:59.9999999"


class BindingError(Exception):
    """The host cannot bind the trigger value to the parameter's type: the invocation fails before the worker is
    asked (the .NET host's "Exception binding parameter ..."), and the message is abandoned."""


# -- values as Newtonsoft.Json writes them ---------------------------------------------------------------------
def dotnet_datetime(value: dt.datetime, offset: bool) -> str:
    """A DateTime (``offset`` False: Kind Unspecified, no suffix) or a DateTimeOffset at UTC (``+00:00``): seven
    fractional digits with the trailing zeros dropped, no fraction at all when it is zero."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{value.microsecond:06d}0".rstrip("0")
    if fraction:
        text += "." + fraction
    return text + ("+00:00" if offset else "")


def _dotnet_value(value: Any) -> Any:
    """An AMQP value as the .NET SDK would hold it, ready for json.dumps in Newtonsoft's shapes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return dotnet_datetime(value, offset=value.tzinfo is not None)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(_dotnet_value(k)): _dotnet_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dotnet_value(v) for v in value]
    return value


def _json(value: Any) -> str:
    return json.dumps(_dotnet_value(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# -- the body ----------------------------------------------------------------------------------------------------
def body_bytes(message: ServiceBusReceivedMessage) -> bytes | str | None:
    """The payload: bytes for a data body, the string of a string value body; None for no body. Any other value
    body, or a sequence body, is what the extension cannot turn into a string (NotSupportedException)."""
    raw = message.raw_amqp_message
    if raw.body_type == AmqpMessageBodyType.DATA:
        sections = list(raw.body) if raw.body is not None else []
        return b"".join(bytes(section) for section in sections) if sections else None
    if raw.body_type == AmqpMessageBodyType.VALUE:
        if raw.body is None:
            return None
        if isinstance(raw.body, (bytes, bytearray)):  # the SDK hands an AMQP string value over as bytes
            return bytes(raw.body).decode("utf-8", errors="replace")
        if isinstance(raw.body, str):
            return raw.body
    raise BindingError(f"the message body is an AMQP {raw.body_type.value} section of "
                       f"{type(raw.body).__name__}, which the Service Bus extension does not convert to a string")


def body_as_string(message: ServiceBusReceivedMessage) -> str | None:
    """The extension's MessageToStringConverter: strict UTF-8 first (a BOM is kept as U+FEFF); bytes that are not
    UTF-8 are decoded again with U+FFFD for each invalid sequence (BinaryData.ToString). Its second try, a .NET
    DataContract-serialised string (the body of the old WindowsAzure.ServiceBus SDK), is not made here."""
    body = body_bytes(message)
    if body is None or isinstance(body, str):
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("utf-8", errors="replace")


def trigger_value(messages: list[ServiceBusReceivedMessage], many: bool, data_type: str | None,
                  protos) -> Any:
    """The trigger ParameterBinding's TypedData for the binding's cardinality and dataType."""
    kind = (data_type or "").lower()
    if not many:
        if kind == "binary":
            body = body_bytes(messages[0])
            return protos.TypedData() if body is None else protos.TypedData(
                bytes=body.encode("utf-8") if isinstance(body, str) else body)
        text = body_as_string(messages[0])
        return protos.TypedData() if text is None else protos.TypedData(string=text)
    if kind == "binary":
        bodies = [body_bytes(m) for m in messages]
        return protos.TypedData(collection_bytes=protos.CollectionBytes(
            bytes=[b.encode("utf-8") if isinstance(b, str) else b for b in bodies if b is not None]))
    texts = [body_as_string(m) for m in messages]
    if kind == "string":
        return protos.TypedData(collection_string=protos.CollectionString(string=[t for t in texts if t]))
    # No dataType on a batch: the host asks for object[], and Json.NET parses each body; a body that is not JSON
    # fails the binding (and so the whole batch).
    parsed = []
    for message, text in zip(messages, texts):
        try:
            parsed.append(json.loads(text) if text is not None else None)
        except ValueError:
            raise BindingError(f"message {message.message_id}: binding parameters to complex objects (such as "
                               "'Object') uses Json.NET serialization, and the body is not JSON") from None
    return protos.TypedData(json=json.dumps(parsed, separators=(",", ":"), ensure_ascii=False))


# -- trigger metadata -------------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _safe(getter):
    try:
        return getter()
    except (OverflowError, ValueError, AttributeError, TypeError):
        return None


def host_delivery_count(message: ServiceBusReceivedMessage) -> int:
    """The AMQP header counts earlier deliveries (0 on the first); the .NET SDK reports one more."""
    return (message.delivery_count or 0) + 1


def _strings(message: ServiceBusReceivedMessage) -> dict[str, str | None]:
    return {"MessageId": _text(message.message_id), "ContentType": _text(message.content_type),
            "ReplyTo": _text(message.reply_to), "To": _text(message.to), "Subject": _text(message.subject),
            "Label": _text(message.subject), "CorrelationId": _text(message.correlation_id),
            "SessionId": _text(message.session_id), "ReplyToSessionId": _text(message.reply_to_session_id),
            "PartitionKey": _text(message.partition_key),
            # Upstream fills TransactionPartitionKey from the partition key as well.
            "TransactionPartitionKey": _text(message.partition_key),
            "DeadLetterSource": _text(message.dead_letter_source), "LockToken": _text(message.lock_token)}


def _times(message: ServiceBusReceivedMessage) -> tuple[dt.datetime | None, dt.datetime | None]:
    enqueued = _safe(lambda: message.enqueued_time_utc)
    expires = _safe(lambda: message.expires_at_utc)
    return enqueued, expires


def _expiry(expires: dt.datetime | None, offset: bool) -> str:
    # No TTL (or one past the calendar) is DateTimeOffset.MaxValue in .NET.
    if expires is None:
        return DOTNET_MAX + ("+00:00" if offset else "")
    return dotnet_datetime(expires, offset)


def _client(namespace: str) -> dict[str, Any]:
    return {"FullyQualifiedNamespace": namespace, "IsClosed": False, "TransportType": 0,
            "Identifier": f"{namespace}-{uuid.uuid4()}"}


def single_metadata(message: ServiceBusReceivedMessage, namespace: str, protos) -> dict[str, Any]:
    """The trigger metadata of one message."""
    out: dict[str, Any] = {key: protos.TypedData(json="{}") for key in ACTION_KEYS}
    out["Client"] = protos.TypedData(json=_json(_client(namespace)))
    out["DeliveryCount"] = protos.TypedData(json=str(host_delivery_count(message)))
    enqueued, expires = _times(message)
    out["ExpiresAtUtc"] = protos.TypedData(json=_json(_expiry(expires, offset=False)))
    out["ExpiresAt"] = protos.TypedData(json=_json(_expiry(expires, offset=True)))
    if enqueued is not None:
        out["EnqueuedTimeUtc"] = protos.TypedData(json=_json(dotnet_datetime(enqueued, offset=False)))
        out["EnqueuedTime"] = protos.TypedData(json=_json(dotnet_datetime(enqueued, offset=True)))
    for key, value in _strings(message).items():
        if value is not None:
            out[key] = protos.TypedData(string=value)
    if message.sequence_number is not None:
        out["SequenceNumber"] = protos.TypedData(json=str(int(message.sequence_number)))
    properties = _json(dict(message.application_properties or {}))
    out["ApplicationProperties"] = protos.TypedData(json=properties)
    out["UserProperties"] = protos.TypedData(json=properties)
    return out


def batch_metadata(messages: list[ServiceBusReceivedMessage], namespace: str, protos) -> dict[str, Any]:
    """The trigger metadata of a batch: each key with ``Array``, string arrays without null or empty entries."""
    out: dict[str, Any] = {key: protos.TypedData(json="{}") for key in ACTION_KEYS}
    out["Client"] = protos.TypedData(json=_json(_client(namespace)))
    out["DeliveryCountArray"] = protos.TypedData(json=_json([host_delivery_count(m) for m in messages]))
    times = [_times(m) for m in messages]
    out["ExpiresAtUtcArray"] = protos.TypedData(json=_json([_expiry(e, False) for _, e in times]))
    out["ExpiresAtArray"] = protos.TypedData(json=_json([_expiry(e, True) for _, e in times]))
    out["EnqueuedTimeUtcArray"] = protos.TypedData(json=_json(
        [dotnet_datetime(q, False) if q else None for q, _ in times]))
    out["EnqueuedTimeArray"] = protos.TypedData(json=_json([dotnet_datetime(q, True) if q else None for q, _ in times]))
    strings = [_strings(m) for m in messages]
    for key in STRING_KEYS:
        values = [s[key] for s in strings if s[key]]
        out[f"{key}Array"] = protos.TypedData(collection_string=protos.CollectionString(string=values))
    out["SequenceNumberArray"] = protos.TypedData(collection_sint64=protos.CollectionSInt64(
        sint64=[int(m.sequence_number or 0) for m in messages]))
    properties = _json([dict(m.application_properties or {}) for m in messages])
    out["ApplicationPropertiesArray"] = protos.TypedData(json=properties)
    out["UserPropertiesArray"] = protos.TypedData(json=properties)
    return out


# -- the body's own properties as binding data ------------------------------------------------------------------
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _wire(text: str) -> str:
    """A .NET string as protobuf carries it: UTF-8 with U+FFFD for a lone surrogate (which a JSON escape such as
    ``\\ud800`` can put into a parsed value)."""
    return _LONE_SURROGATE.sub("\ufffd", text)


_JSON_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")


def _jvalue_string(value: Any) -> str | None:
    """``(string)JValue`` of a parsed JSON value (Json.NET reads an ISO date string as a DateTime)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, str) and _JSON_DATE.match(value):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))  # ValueError/OverflowError: no merge
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.timezone.utc)
        return parsed.strftime("%m/%d/%Y %H:%M:%S")
    return str(value)


def merge_body_properties(metadata: dict[str, Any], body: str | None, protos) -> None:
    """The host's ``ApplyBindingData`` for a string trigger value: when the body is a JSON object, each top-level
    property that is not an array becomes binding data, replacing a key of the same name in any case (binding data
    is case-insensitive: the key keeps its case, the value is the body's), so a body property called ``lockToken`` or
    ``deliverycount`` overrides the message's own.
    Objects go as json, other values as the string Json.NET makes of them; nulls are skipped; a body that does not
    parse changes nothing."""
    if not body:
        return
    text = body.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return
    if not isinstance(parsed, dict):
        return
    # Json.NET converts every property first; anything it cannot convert (a date beyond its calendar) ends the
    # whole merge, which the host swallows: then no property of the body is merged.
    try:
        converted = {name: (json.dumps(value, separators=(",", ":"), ensure_ascii=False), True)
                     if isinstance(value, dict) else (_jvalue_string(value), False)
                     for name, value in parsed.items() if not isinstance(value, list) and value is not None}
    except (ValueError, OverflowError, RecursionError):
        return
    for name, (text, is_json) in converted.items():
        if text is None:
            continue
        # A .NET dictionary that ignores case keeps the key it had and takes the new value.
        key = next((k for k in metadata if k.lower() == name.lower()), _wire(name))
        metadata[key] = protos.TypedData(json=_wire(text)) if is_json else protos.TypedData(string=_wire(text))


# -- timers -----------------------------------------------------------------------------------------------------
def timer_info(past_due: bool, status: dict[str, dt.datetime] | None, adjust_for_dst: bool) -> str:
    """TimerInfo as Json.NET writes it: Schedule, ScheduleStatus (local times with their offset, null without a
    schedule monitor), IsPastDue."""
    offset = dt.datetime.now().astimezone().strftime("%z")

    def local(value: dt.datetime) -> str:  # naive local time, as the host's DateTime of Kind Local is written
        return dotnet_datetime(value, offset=False) + f"{offset[:3]}:{offset[3:]}"

    schedule_status = None if status is None else {key: local(value) for key, value in status.items()}
    return json.dumps({"Schedule": {"AdjustForDST": adjust_for_dst}, "ScheduleStatus": schedule_status,
                       "IsPastDue": past_due}, separators=(",", ":"))


def timer_metadata(now: dt.datetime) -> str:
    """``DateTime.Now.ToString()`` under the invariant culture, the one trigger metadata entry of a timer."""
    return now.astimezone().strftime("%m/%d/%Y %H:%M:%S")


def lock_tokens(messages: Iterable[ServiceBusReceivedMessage]) -> list[str]:
    return [str(m.lock_token) for m in messages if m.lock_token is not None]
