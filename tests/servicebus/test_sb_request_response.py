"""Wire details of request-response answers ($cbs, $management) and broker-stamped message ids.

Clients match an answer to its request by correlation-id, comparing value *and* AMQP type: the
Python SDK sends uuids, @azure/core-amqp (rhea) strings; AMQP also allows ulong and binary ids.
"""

from __future__ import annotations

import uuid

import pytest
from azure.servicebus._pyamqp._encode import encode_payload
from azure.servicebus._pyamqp.message import Message, Properties

from emulators.servicebus import codec
from emulators.servicebus.broker import ParsedMessage, PyRequest, _response

# AMQP constructors (AMQP 1.0 types 1.6): uuid, str8, vbin8, ulong / smallulong / ulong0.
UUID, STR8, VBIN8 = 0x98, 0xA1, 0xA0
ULONGS = (0x80, 0x53, 0x44)


def _request(message_id):
    out = bytearray()
    encode_payload(
        out,
        Message(
            properties=Properties(message_id=message_id, reply_to="cbs-reply"),
            application_properties={"operation": "put-token"},
            value="token",
        ),
    )
    return bytes(out)


def _correlation_id_raw(payload):
    props = dict(codec.split_sections(payload))[codec.SECTION_PROPERTIES]
    return codec.list_items(props)[5]


@pytest.mark.parametrize(
    "message_id, constructors, expected",
    [
        (uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e"), (UUID,), uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")),
        ("5d8854ba-dcd0-a745-8260-4c571baeed90", (STR8,), b"5d8854ba-dcd0-a745-8260-4c571baeed90"),
        (b"\x00\x01binary-id", (VBIN8,), b"\x00\x01binary-id"),
        (7, ULONGS, 7),
        (0, ULONGS, 0),
    ],
    ids=["uuid", "string", "binary", "ulong", "ulong0"],
)
def test_correlation_id_echoes_message_id_with_its_amqp_type(message_id, constructors, expected):
    req = PyRequest.parse(_request(message_id))
    assert req.reply_to == "cbs-reply"
    raw = _correlation_id_raw(_response(req, 200, "OK", status_key="status-code", desc_key="status-description"))
    assert raw[0] in constructors, f"correlation-id constructor 0x{raw[0]:02x}"
    assert codec.decode_value(raw) == expected


def test_request_without_message_id_gets_a_null_correlation_id():
    out = bytearray()
    encode_payload(out, Message(application_properties={"operation": "x"}, value="v"))
    req = PyRequest.parse(bytes(out))
    assert req.message_id is None
    assert _correlation_id_raw(_response(req, 200, "OK"))[0] == 0x40


def test_message_without_id_gets_a_string_message_id_and_keeps_its_other_properties():
    out = bytearray()
    encode_payload(out, Message(properties=Properties(correlation_id="c-1", group_id="s-1"), value="body"))
    p = ParsedMessage.parse(bytes(out))
    assert p.message_id is None
    p.ensure_message_id()
    assert len(p.message_id) == 32 and int(p.message_id, 16) >= 0
    items = codec.list_items(p.props_raw)
    assert items[0][0] == STR8
    reparsed = ParsedMessage.parse(codec.encode_section(codec.SECTION_PROPERTIES, p.props_raw) + p.body_raw)
    assert (reparsed.message_id, reparsed.correlation_id, reparsed.session_id) == (p.message_id, "c-1", "s-1")


def test_message_without_properties_section_gets_one():
    out = bytearray()
    encode_payload(out, Message(value="body"))
    p = ParsedMessage.parse(bytes(out))
    assert p.props_raw is None
    p.ensure_message_id()
    assert ParsedMessage.parse(codec.encode_section(codec.SECTION_PROPERTIES, p.props_raw)).message_id == p.message_id


def test_a_message_id_set_by_the_sender_is_kept():
    out = bytearray()
    encode_payload(out, Message(properties=Properties(message_id="mine"), value="body"))
    p = ParsedMessage.parse(bytes(out))
    before = p.props_raw
    p.ensure_message_id()
    assert p.message_id == "mine" and p.props_raw == before


def _stored(app_properties):
    from emulators.servicebus.broker import StoredMessage

    out = bytearray()
    encode_payload(out, Message(properties=Properties(message_id="m"), application_properties=app_properties, value="b"))
    return StoredMessage(ParsedMessage.parse(bytes(out)), 1)


def test_properties_to_modify_merge_into_application_properties_with_their_types():
    msg = _stored({"kept": "yes", "attempt": 0})
    # As rhea sends them in a modified outcome's message-annotations: symbol keys.
    raw = codec.build_map(
        [
            (codec.encode(codec.typed(codec.AMQPTypes.symbol, b"attempt")), codec.encode(codec.typed(codec.AMQPTypes.int, 2))),
            (codec.encode(codec.typed(codec.AMQPTypes.symbol, b"note")), codec.encode(codec.typed(codec.AMQPTypes.string, "x"))),
            (codec.encode(codec.typed(codec.AMQPTypes.symbol, b"nested")), codec.encode(codec.typed(codec.AMQPTypes.list, []))),
            (codec.encode(codec.typed(codec.AMQPTypes.string, "DeadLetterReason")), codec.encode(codec.typed(codec.AMQPTypes.string, "r"))),
        ]
    )
    msg.modify_properties(raw, skip=("DeadLetterReason",))
    pairs = {codec.decode_value(k): v for k, v in codec.map_pairs(msg.ap_raw)}
    assert set(pairs) == {b"kept", b"attempt", b"note"}
    for k in codec.map_pairs(msg.ap_raw):
        assert k[0][0] == STR8, "application-properties keys are strings"
    assert pairs[b"attempt"][0] in (0x71, 0x54) and codec.decode_value(pairs[b"attempt"]) == 2  # int stays int
    assert pairs[b"note"][0] == STR8


def test_no_properties_to_modify_leaves_the_message_alone():
    msg = _stored({"kept": "yes"})
    before = msg.ap_raw
    msg.modify_properties(None)
    msg.modify_properties(codec.build_map([]))
    assert msg.ap_raw == before


def test_one_octet_booleans_in_application_properties_are_stored_in_compact_form():
    # The Python SDK writes True as 0x56 0x01, which rhea reads as the number 1; Service Bus
    # re-encodes application properties, so receivers get 0x41 (true) / 0x42 (false).
    msg = _stored({"yes": True, "no": False, "text": "t", "n": 1})
    pairs = {codec.decode_value(k): v for k, v in codec.map_pairs(msg.ap_raw)}
    assert pairs[b"yes"] == b"\x41" and pairs[b"no"] == b"\x42"
    assert pairs[b"text"][0] == STR8 and codec.decode_value(pairs[b"n"]) == 1
