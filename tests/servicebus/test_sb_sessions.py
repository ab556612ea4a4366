"""Session receivers: session lock, state, ordering, NEXT_AVAILABLE."""

from __future__ import annotations

import datetime
import time

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

from sb_helpers import queue_view

pytestmark = pytest.mark.timeout(60)

UTC = datetime.timezone.utc


def _drain(receiver, expected, wait=5):
    got = []
    deadline = time.monotonic() + wait
    while len(got) < expected and time.monotonic() < deadline:
        got += receiver.receive_messages(max_message_count=expected - len(got), max_wait_time=1)
    return got


def test_named_session_lock_state_and_renew(standin, client, senders, bg):
    sender = senders.queue("sessions")
    sender.send_messages([ServiceBusMessage(f"a{i}", session_id="A") for i in range(3)])
    sender.send_messages([ServiceBusMessage(f"b{i}", session_id="B") for i in range(2)])
    with ServiceBusClient.from_connection_string(standin.connection_string, retry_total=0) as no_retry:
        with client.get_queue_receiver("sessions", session_id="A") as receiver:  # close releases the session
            session = receiver.session
            assert session.session_id == "A"
            assert session.locked_until_utc > datetime.datetime.now(UTC)
            # a second receiver can never hold the same session
            with pytest.raises(SessionCannotBeLockedError):
                with no_retry.get_queue_receiver("sessions", session_id="A") as other:
                    other.receive_messages(max_message_count=1, max_wait_time=1)
            msgs = _drain(receiver, 3)
            assert [str(m) for m in msgs] == ["a0", "a1", "a2"]
            assert all(m.session_id == "A" for m in msgs)
            assert all(m.delivery_count == 0 for m in msgs)
            assert session.get_state() is None
            session.set_state("checkpoint-1")
            assert session.get_state() == b"checkpoint-1"
            old = session.locked_until_utc
            time.sleep(0.05)
            renewed = session.renew_lock()
            assert renewed > old and renewed > datetime.datetime.now(UTC)
            for m in msgs:
                receiver.complete_message(m)
        # the lock was released on close: another receiver takes the session and sees its state
        with bg.receiver(lambda: client.get_queue_receiver("sessions", session_id="A")) as receiver:
            assert receiver.session.get_state() == b"checkpoint-1"
            receiver.session.set_state(None)
            assert receiver.session.get_state() is None
            assert receiver.receive_messages(max_message_count=1, max_wait_time=0.5) == []
    with bg.receiver(lambda: client.get_queue_receiver("sessions", session_id="B")) as receiver:
        msgs = _drain(receiver, 2)
        assert [str(m) for m in msgs] == ["b0", "b1"]
        for m in msgs:
            receiver.complete_message(m)
    assert queue_view(standin, "sessions")["messages"] == []


def test_next_available_session_gives_distinct_sessions(standin, client, senders, bg):
    sender = senders.queue("sessions-next")
    sender.send_messages([ServiceBusMessage("x", session_id="S1"), ServiceBusMessage("y", session_id="S2")])
    with bg.receiver(lambda: client.get_queue_receiver("sessions-next", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5)) as r1:
        with bg.receiver(lambda: client.get_queue_receiver("sessions-next", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5)) as r2:
            m1 = _drain(r1, 1)
            m2 = _drain(r2, 1)
            assert {r1.session.session_id, r2.session.session_id} == {"S1", "S2"}
            assert m1[0].session_id == r1.session.session_id
            assert m2[0].session_id == r2.session.session_id
            r1.complete_message(m1[0])
            r2.complete_message(m2[0])
    with ServiceBusClient.from_connection_string(standin.connection_string, retry_total=0) as no_retry:
        # nothing left: NEXT_AVAILABLE gives up after the client's wait time
        started = time.monotonic()
        with pytest.raises(OperationTimeoutError):
            with no_retry.get_queue_receiver("sessions-next", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=1) as r:
                r.receive_messages(max_message_count=1, max_wait_time=1)
        assert time.monotonic() - started < 15


def test_next_available_waits_for_a_session_to_get_messages(standin, client, senders, bg):
    import threading

    result = {}

    def take():
        with bg.receiver(lambda: client.get_queue_receiver("sessions-next", session_id=NEXT_AVAILABLE_SESSION, max_wait_time=10)) as r:
            msgs = _drain(r, 1)
            result["session"] = r.session.session_id
            result["body"] = str(msgs[0]) if msgs else None
            for m in msgs:
                r.complete_message(m)

    worker = threading.Thread(target=take)
    worker.start()
    time.sleep(1.0)
    with ServiceBusClient.from_connection_string(standin.connection_string) as other:
        with other.get_queue_sender("sessions-next") as sender:
            sender.send_messages(ServiceBusMessage("late", session_id="S-late"))
    worker.join(30)
    assert result == {"session": "S-late", "body": "late"}


def test_session_messages_delivered_in_order(standin, client, senders, bg):
    sender = senders.queue("sessions-order")
    batch = sender.create_message_batch()
    for i in range(10):
        batch.add_message(ServiceBusMessage(f"{'P' if i % 2 else 'Q'}{i}", session_id="P" if i % 2 else "Q"))
    sender.send_messages(batch)
    for sid, expected in (("P", ["P1", "P3", "P5", "P7", "P9"]), ("Q", ["Q0", "Q2", "Q4", "Q6", "Q8"])):
        with bg.receiver(lambda: client.get_queue_receiver("sessions-order", session_id=sid)) as receiver:
            first = _drain(receiver, 2)
            receiver.abandon_message(first[0])  # goes back to the head of the session
            receiver.complete_message(first[1])
            rest = _drain(receiver, 4)
            bodies = [str(m) for m in rest]
            assert str(first[0]) == expected[0] and str(first[1]) == expected[1]
            assert bodies == [expected[0]] + expected[2:]
            assert rest[0].delivery_count == 1
            for m in rest:
                receiver.complete_message(m)
    assert queue_view(standin, "sessions-order")["messages"] == []


def test_session_lock_expiry_releases_session(standin, client, senders, bg):
    sender = senders.queue("sessions-lock")
    sender.send_messages(ServiceBusMessage("held", session_id="L"))
    with ServiceBusClient.from_connection_string(standin.connection_string, retry_total=0) as no_retry:
        with no_retry.get_queue_receiver("sessions-lock", session_id="L") as receiver:
            msg = _drain(receiver, 1)[0]
            time.sleep(2.3)  # LockDuration PT2S, never renewed
            with pytest.raises(SessionLockLostError):
                receiver.complete_message(msg)
        view = queue_view(standin, "sessions-lock")
        assert view["locked_count"] == 0 and view["messages"][0]["delivery_count"] == 1
        with bg.receiver(lambda: client.get_queue_receiver("sessions-lock", session_id="L")) as receiver:
            msg = _drain(receiver, 1)[0]
            assert msg.delivery_count == 1
            receiver.complete_message(msg)
