"""AMQP 1.0 value and message-section helpers for the Service Bus stand-in.

Encoding and decoding of individual values is delegated to the AMQP codec that ships inside
azure-servicebus 7.15.0 (``azure/servicebus/_pyamqp/_encode.py`` and ``_decode.py``), so the
bytes on the wire are exactly the ones the real client produces and understands.

What is added here is a *raw* walker: it finds where an encoded value ends without decoding it.
It is used to split a message into its sections and keep the client's bytes untouched. That
matters because the SDK decoder maps ``string``, ``symbol`` and ``binary`` all to ``bytes``; a
message re-encoded from decoded values would silently turn a string application property into
a binary one for every other AMQP client. Only the sections the broker must change (header and
message annotations, and application properties when dead-lettering) are rebuilt, and even then
the pairs the broker does not own are copied byte for byte.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional, Tuple

from azure.servicebus._pyamqp import _decode as _sdk_decode
from azure.servicebus._pyamqp._encode import encode_value, describe_performative
from azure.servicebus._pyamqp.message import Header
from azure.servicebus._pyamqp.types import AMQPTypes, TYPE, VALUE

__all__ = [
    "AmqpDecodeError",
    "skip_value",
    "decode_value",
    "encode",
    "split_sections",
    "map_pairs",
    "list_items",
    "build_list",
    "build_map",
    "message_id_value",
    "typed",
    "SECTION_HEADER",
    "SECTION_DELIVERY_ANNOTATIONS",
    "SECTION_MESSAGE_ANNOTATIONS",
    "SECTION_PROPERTIES",
    "SECTION_APPLICATION_PROPERTIES",
    "SECTION_DATA",
    "SECTION_SEQUENCE",
    "SECTION_VALUE",
    "SECTION_FOOTER",
    "encode_header",
    "encode_section",
    "symbol_key",
    "AMQPTypes",
]


class AmqpDecodeError(ValueError):
    """Raised for malformed AMQP input (never escapes to crash the server loop)."""


# Section descriptors, AMQP 1.0 messaging spec section 3.2.
SECTION_HEADER = 0x70
SECTION_DELIVERY_ANNOTATIONS = 0x71
SECTION_MESSAGE_ANNOTATIONS = 0x72
SECTION_PROPERTIES = 0x73
SECTION_APPLICATION_PROPERTIES = 0x74
SECTION_DATA = 0x75
SECTION_SEQUENCE = 0x76
SECTION_VALUE = 0x77
SECTION_FOOTER = 0x78

_SYMBOLIC_DESCRIPTORS = {
    b"amqp:header:list": SECTION_HEADER,
    b"amqp:delivery-annotations:map": SECTION_DELIVERY_ANNOTATIONS,
    b"amqp:message-annotations:map": SECTION_MESSAGE_ANNOTATIONS,
    b"amqp:properties:list": SECTION_PROPERTIES,
    b"amqp:application-properties:map": SECTION_APPLICATION_PROPERTIES,
    b"amqp:data:binary": SECTION_DATA,
    b"amqp:amqp-sequence:list": SECTION_SEQUENCE,
    b"amqp:amqp-value:*": SECTION_VALUE,
    b"amqp:footer:map": SECTION_FOOTER,
}

# Fixed widths by the high nibble of the constructor (AMQP 1.0 types spec 1.6 / 1.2).
_FIXED_WIDTH = {0x4: 0, 0x5: 1, 0x6: 2, 0x7: 4, 0x8: 8, 0x9: 16}
_MAX_DEPTH = 64


def skip_value(buf: bytes, pos: int, depth: int = 0) -> int:
    """Return the offset just past the AMQP value that starts at ``pos``."""
    if depth > _MAX_DEPTH:
        raise AmqpDecodeError("AMQP value nested too deeply")
    try:
        c = buf[pos]
    except IndexError:
        raise AmqpDecodeError("truncated AMQP value") from None
    pos += 1
    if c == 0x00:  # described: descriptor then value
        pos = skip_value(buf, pos, depth + 1)
        return skip_value(buf, pos, depth + 1)
    hi = c >> 4
    if hi in _FIXED_WIDTH:
        end = pos + _FIXED_WIDTH[hi]
    elif hi in (0xA, 0xC, 0xE):
        if pos >= len(buf):
            raise AmqpDecodeError("truncated AMQP value")
        end = pos + 1 + buf[pos]
    elif hi in (0xB, 0xD, 0xF):
        if pos + 4 > len(buf):
            raise AmqpDecodeError("truncated AMQP value")
        end = pos + 4 + struct.unpack_from(">I", buf, pos)[0]
    else:
        raise AmqpDecodeError("unknown AMQP constructor 0x%02x" % c)
    if end > len(buf):
        raise AmqpDecodeError("truncated AMQP value")
    return end


def decode_value(raw: bytes) -> Any:
    """Decode one encoded value with the SDK decoder (strings/symbols come back as bytes)."""
    try:
        mv = memoryview(raw)
        _, value = _sdk_decode._DECODE_BY_CONSTRUCTOR[mv[0]](mv[1:])  # pylint: disable=protected-access
        return value
    except Exception as exc:  # malformed input of any shape
        raise AmqpDecodeError(f"cannot decode AMQP value: {exc}") from exc


def encode(value: Any) -> bytes:
    out = bytearray()
    encode_value(out, value)
    return bytes(out)


def typed(amqp_type: str, value: Any) -> Dict[str, Any]:
    return {TYPE: amqp_type, VALUE: value}


def split_sections(payload: bytes) -> List[Tuple[int, bytes]]:
    """Split an encoded message into ``(descriptor_code, value_bytes)`` pairs, in order."""
    sections: List[Tuple[int, bytes]] = []
    pos = 0
    n = len(payload)
    while pos < n:
        if payload[pos] != 0x00:
            raise AmqpDecodeError("message section is not a described type")
        dpos = pos + 1
        dend = skip_value(payload, dpos)
        descriptor = decode_value(payload[dpos:dend])
        if isinstance(descriptor, (bytes, bytearray)):
            code = _SYMBOLIC_DESCRIPTORS.get(bytes(descriptor))
        else:
            code = descriptor
        if code not in range(SECTION_HEADER, SECTION_FOOTER + 1):
            raise AmqpDecodeError(f"unknown message section descriptor {descriptor!r}")
        vend = skip_value(payload, dend)
        sections.append((code, bytes(payload[dend:vend])))
        pos = vend
    return sections


def encode_section(code: int, value_bytes: bytes) -> bytes:
    # 0x00 0x53 <code>: described type with a smallulong descriptor, as the SDK writes it.
    return b"\x00\x53" + bytes([code]) + value_bytes


def map_pairs(raw_map: Optional[bytes]) -> List[Tuple[bytes, bytes]]:
    """Split an encoded map into raw ``(key, value)`` pairs without decoding them."""
    if not raw_map or raw_map[0] == 0x40:  # absent or null
        return []
    c = raw_map[0]
    if c == 0xC1:
        count = raw_map[2]
        pos = 3
    elif c == 0xD1:
        count = struct.unpack_from(">I", raw_map, 5)[0]
        pos = 9
    else:
        raise AmqpDecodeError("expected an AMQP map")
    if count % 2:
        raise AmqpDecodeError("AMQP map with an odd element count")
    pairs = []
    for _ in range(count // 2):
        kend = skip_value(raw_map, pos)
        vend = skip_value(raw_map, kend)
        pairs.append((bytes(raw_map[pos:kend]), bytes(raw_map[kend:vend])))
        pos = vend
    return pairs


def list_items(raw_list: Optional[bytes]) -> List[bytes]:
    """Split an encoded list into the raw bytes of its items without decoding them."""
    if not raw_list or raw_list[0] in (0x40, 0x45):  # absent, null or list0
        return []
    c = raw_list[0]
    if c == 0xC0:
        count, pos = raw_list[2], 3
    elif c == 0xD0:
        count, pos = struct.unpack_from(">I", raw_list, 5)[0], 9
    else:
        raise AmqpDecodeError("expected an AMQP list")
    items = []
    for _ in range(count):
        end = skip_value(raw_list, pos)
        items.append(bytes(raw_list[pos:end]))
        pos = end
    return items


def build_list(items: List[bytes]) -> bytes:
    """Encode a list from already-encoded items (the inverse of ``list_items``)."""
    if not items:
        return b"\x45"
    body = b"".join(items)
    if len(body) + 1 < 256 and len(items) < 256:
        return bytes([0xC0, len(body) + 1, len(items)]) + body
    return b"\xd0" + struct.pack(">II", len(body) + 4, len(items)) + body


def message_id_value(raw: Optional[bytes]) -> Any:
    """Decode an encoded message-id (or correlation-id) into the Python type that re-encodes as the
    same AMQP type through the SDK's ``encode_message_id``: uuid -> UUID, string -> str,
    binary -> bytes, ulong -> int.

    The SDK decoder alone turns a string into bytes, and bytes re-encode as binary; a peer that
    matches responses on correlation-id (rhea-based clients compare with the exact type they sent)
    then never sees its answer.
    """
    if not raw or raw[0] == 0x40:
        return None
    value = decode_value(raw)
    c = raw[0]
    if c in (0xA1, 0xB1, 0xA3, 0xB3):  # string (a symbol is no valid message-id: answer as string)
        return bytes(value).decode("utf-8", "replace")
    if c in (0xA0, 0xB0):  # binary
        return bytes(value)
    return value  # uuid (0x98) -> uuid.UUID; ulong (0x80, 0x53, 0x44) -> int


def build_map(pairs: List[Tuple[bytes, bytes]]) -> bytes:
    body = b"".join(k + v for k, v in pairs)
    count = len(pairs) * 2
    if len(body) + 1 < 256 and count < 256:
        return bytes([0xC1, len(body) + 1, count]) + body
    return b"\xd1" + struct.pack(">II", len(body) + 4, count) + body


def encode_header(
    durable: Optional[bool],
    priority: Optional[int],
    ttl: Optional[int],
    first_acquirer: Optional[bool],
    delivery_count: int,
) -> bytes:
    """Encode a header section.

    The SDK encoder writes every header field (nulls included), so ``delivery_count`` is always
    present on the wire, also when it is 0. The SDK reads ``header.delivery_count`` as-is
    (``azure/servicebus/_common/message.py``, ``delivery_count``), so a first delivery shows 0
    as it does against the real service -- unlike python-qpid-proton, which drops a header whose
    fields are all default (see /work/shared/notes/servicebus.md).
    """
    out = bytearray()
    encode_value(
        out,
        describe_performative(
            Header(
                durable=durable,
                priority=priority,
                ttl=ttl,
                first_acquirer=first_acquirer,
                delivery_count=delivery_count,
            )
        ),
    )
    return bytes(out)


def symbol_key(raw_key: bytes) -> Optional[bytes]:
    """Decode a raw map key that should be a symbol or string; None when it is not."""
    try:
        key = decode_value(raw_key)
    except AmqpDecodeError:
        return None
    return bytes(key) if isinstance(key, (bytes, bytearray)) else None

