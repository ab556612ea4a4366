"""Authorization, entity errors, robustness against bad input, configuration and the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import (
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusError,
)

from emulators.servicebus import ServiceBusStandIn, default_config_path, load_config
from emulators.servicebus.config import EntitySettings, parse_duration
from sb_helpers import queue_view

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def test_wrong_key_is_refused_by_cbs(standin):
    bad = standin.connection_string.replace("SharedAccessKey=SAS_KEY_VALUE", "SharedAccessKey=wrong")
    with ServiceBusClient.from_connection_string(bad, retry_total=0) as c:
        with pytest.raises(ServiceBusAuthenticationError):
            with c.get_queue_sender("misc") as sender:
                sender.send_messages(ServiceBusMessage("nope"))


def test_unknown_entity_is_not_found(standin):
    with ServiceBusClient.from_connection_string(standin.connection_string, retry_total=0) as c:
        with pytest.raises(MessagingEntityNotFoundError):
            with c.get_queue_sender("no-such-queue") as sender:
                sender.send_messages(ServiceBusMessage("nope"))


def test_session_rules_are_enforced(standin):
    with ServiceBusClient.from_connection_string(standin.connection_string, retry_total=0) as c:
        with c.get_queue_sender("sessions") as sender:
            with pytest.raises(ServiceBusError):
                sender.send_messages(ServiceBusMessage("no session id"))  # rejected like the service
        with pytest.raises(ServiceBusError):
            with c.get_queue_receiver("sessions") as receiver:  # non-session receiver on a session queue
                receiver.receive_messages(max_message_count=1, max_wait_time=1)
        with pytest.raises(ServiceBusError):
            with c.get_queue_receiver("misc", session_id="x") as receiver:  # session receiver, plain queue
                receiver.receive_messages(max_message_count=1, max_wait_time=1)
    assert queue_view(standin, "sessions")["messages"] == []


def _sasl_then(payload: bytes, port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"AMQP\x03\x01\x00\x00")
        time.sleep(0.05)
        s.sendall(payload)
        s.settimeout(2)
        try:
            while s.recv(4096):
                pass
        except (socket.timeout, ConnectionError):
            pass


def test_garbage_input_never_kills_the_server(standin, client, senders, bg):
    port = standin.port
    cases = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not AMQP at all
        b"AMQP\x00\x01\x00\x00" + os.urandom(64),  # AMQP without SASL
        struct.pack(">IBBH", 0xFFFFFFF0, 2, 1, 0),  # absurd frame size
        struct.pack(">IBBH", 20, 2, 1, 0) + b"\x00\x53\x41\xc0\x07\x99" + b"\x00" * 6,  # broken sasl-init
    ]
    # a valid SASL/AMQP handshake followed by a frame on a channel that was never begun
    sasl_init = bytes.fromhex("0053 41 c0 0c 01 a3 09") + b"ANONYMOUS"
    sasl_init = bytes.fromhex("0053 41 c0 0b 01 a3 09") + b"ANONYMOUS"
    frame = struct.pack(">IBBH", 8 + len(sasl_init), 2, 1, 0) + sasl_init
    cases.append(frame + b"AMQP\x00\x01\x00\x00" + struct.pack(">IBBH", 12, 2, 0, 7) + b"\x00\x53\x13\x45")
    for case in cases:
        _sasl_then(case, port)
    # still serving real clients
    sender = senders.queue("robust")
    sender.send_messages(ServiceBusMessage("still alive", message_id="alive"))
    with bg.receiver(lambda: client.get_queue_receiver("robust")) as receiver:
        msgs = receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert [m.message_id for m in msgs] == ["alive"]
        receiver.complete_message(msgs[0])


def test_undecodable_message_is_rejected_not_fatal(standin, client, senders, bg):
    from azure.servicebus.amqp import AmqpAnnotatedMessage, AmqpMessageBodyType

    sender = senders.queue("values")
    # a well-formed message whose application property holds a nested map is still fine
    sender.send_messages(AmqpAnnotatedMessage(value_body={"k": [1, 2, 3]}, application_properties={"p": 1}))
    with bg.receiver(lambda: client.get_queue_receiver("values")) as receiver:
        msgs = receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert msgs and msgs[0].body_type == AmqpMessageBodyType.VALUE
        receiver.complete_message(msgs[0])


def test_default_config_matches_the_official_shape():
    config = load_config(default_config_path())
    ns = config["UserConfig"]["Namespaces"][0]
    assert ns["Name"] == "sbemulatorns" and config["UserConfig"]["Logging"] == {"Type": "Console"}
    queues = {q["Name"]: q["Properties"] for q in ns["Queues"]}
    plain = queues["customer-events"]
    assert plain["MaxDeliveryCount"] == 5 and plain["LockDuration"] == "PT30S"
    assert plain["RequiresSession"] is False and plain["RequiresDuplicateDetection"] is True
    assert plain["DefaultMessageTimeToLive"] == "P14D" and plain["DuplicateDetectionHistoryTimeWindow"] == "PT10M"
    assert plain["DeadLetteringOnMessageExpiration"] is True
    assert queues["customer-events-sessions"]["RequiresSession"] is True
    topic = ns["Topics"][0]
    assert topic["Name"] == "customer-lifecycle" and [s["Name"] for s in topic["Subscriptions"]] == ["audit"]
    s = EntitySettings.from_config(plain)
    assert (s.lock_duration, s.max_delivery_count, s.default_ttl, s.duplicate_window) == (30.0, 5, 14 * 86400.0, 600.0)


def test_duration_parsing():
    assert parse_duration("PT2S") == 2.0
    assert parse_duration("PT1M30S") == 90.0
    assert parse_duration("P1DT1H") == 90000.0
    assert parse_duration("00:00:30") == 30.0
    assert parse_duration("14.00:00:00") == 14 * 86400.0
    assert parse_duration("P10675199DT2H48M5.4775807S") is None  # TimeSpan.MaxValue: never expires
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_invalid_config_is_refused():
    with pytest.raises(ValueError):
        ServiceBusStandIn({"UserConfig": {"Namespaces": []}})
    with pytest.raises(ValueError):
        ServiceBusStandIn({"UserConfig": {"Namespaces": [{"Name": "x", "Queues": [{"Name": "q", "Properties": {"LockDuration": "PT10M"}}]}]}})


def test_snapshot_has_no_bodies(standin, client, senders, bg):
    sender = senders.queue("snapshot")
    sender.send_messages(ServiceBusMessage("secret body", message_id="snap-1", session_id="s"))
    view = queue_view(standin, "snapshot")
    msg = next(m for m in view["messages"] if m["message_id"] == "snap-1")
    assert {"sequence_number", "message_id", "session_id", "delivery_count", "state", "dead_letter_reason", "dead_letter_error_description"} <= set(msg)
    assert msg["state"] == "active" and msg["session_id"] == "s"
    assert "secret body" not in json.dumps(standin.snapshot(), default=str)
    with bg.receiver(lambda: client.get_queue_receiver("snapshot")) as receiver:
        for m in receiver.receive_messages(max_message_count=5, max_wait_time=3):
            receiver.complete_message(m)


def test_cli_runs_in_foreground_and_stops_on_sigterm(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.servicebus", "--config", default_config_path(), "--port", "0"],
        cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("Endpoint=sb://127.0.0.1:") and line.endswith("UseDevelopmentEmulator=true")
        with ServiceBusClient.from_connection_string(line) as c:
            with c.get_queue_sender("customer-events") as sender:
                sender.send_messages(ServiceBusMessage("via cli", message_id="cli-1"))
            with c.get_queue_receiver("customer-events") as receiver:
                msgs = receiver.receive_messages(max_message_count=1, max_wait_time=5)
                assert [m.message_id for m in msgs] == ["cli-1"]
                receiver.complete_message(msgs[0])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
