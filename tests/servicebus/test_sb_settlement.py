"""Settlement, locks, dead-lettering and delivery counting with the real azure-servicebus client."""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageLockLostError, MessageNotFoundError

from sb_helpers import queue_view, wait_for

pytestmark = pytest.mark.timeout(60)

UTC = datetime.timezone.utc


def _receive_one(receiver, wait=5):
    msgs = receiver.receive_messages(max_message_count=1, max_wait_time=wait)
    assert len(msgs) == 1, "expected a message"
    return msgs[0]


def test_abandon_redelivers_then_max_delivery_count_dead_letters(standin, client, senders, bg):
    sender = senders.queue("abandon")
    sender.send_messages(ServiceBusMessage("poison", message_id="poison-1"))
    with bg.receiver(lambda: client.get_queue_receiver("abandon")) as receiver:
        counts = []
        for _ in range(3):  # MaxDeliveryCount 3
            msg = _receive_one(receiver)
            counts.append(msg.delivery_count)
            receiver.abandon_message(msg)
        assert counts == [0, 1, 2]
        assert receiver.receive_messages(max_message_count=1, max_wait_time=0.5) == []
    view = queue_view(standin, "abandon")
    assert view["active_count"] == 0 and view["dead_letter_count"] == 1
    with bg.receiver(lambda: client.get_queue_receiver("abandon", sub_queue=ServiceBusSubQueue.DEAD_LETTER)) as dlq:
        msg = _receive_one(dlq)
        assert msg.message_id == "poison-1"
        assert msg.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert "3" in msg.dead_letter_error_description
        assert msg.delivery_count == 3
        dlq.complete_message(msg)
    assert queue_view(standin, "abandon")["dead_letter_count"] == 0


def test_dead_letter_with_reason_and_description(standin, client, senders, bg):
    sender = senders.queue("deadletter")
    sender.send_messages(
        ServiceBusMessage("bad", message_id="dl-1", correlation_id="c-9", application_properties={"kept": "yes"})
    )
    with bg.receiver(lambda: client.get_queue_receiver("deadletter")) as receiver:
        msg = _receive_one(receiver)
        receiver.dead_letter_message(msg, reason="ValidationFailed", error_description="email missing")
    view = queue_view(standin, "deadletter")
    assert view["active_count"] == 0 and view["dead_letter_count"] == 1
    assert view["dead_letter_messages"][0]["dead_letter_reason"] == "ValidationFailed"
    with bg.receiver(lambda: client.get_queue_receiver("deadletter", sub_queue=ServiceBusSubQueue.DEAD_LETTER)) as dlq:
        peeked = dlq.peek_messages(max_message_count=5)
        assert [m.message_id for m in peeked] == ["dl-1"]
        msg = _receive_one(dlq)
        assert msg.dead_letter_reason == "ValidationFailed"
        assert msg.dead_letter_error_description == "email missing"
        assert msg.application_properties[b"DeadLetterReason"] == b"ValidationFailed"
        assert msg.application_properties[b"DeadLetterErrorDescription"] == b"email missing"
        assert msg.application_properties[b"kept"] == b"yes"
        assert msg.correlation_id == "c-9" and str(msg) == "bad"
        assert msg.dead_letter_source is None  # only set when auto-forwarded out of a DLQ
        dlq.abandon_message(msg)  # the DLQ never dead-letters again
        msg = _receive_one(dlq)
        dlq.complete_message(msg)
    assert queue_view(standin, "deadletter")["dead_letter_count"] == 0


def test_defer_and_receive_deferred_messages(standin, client, senders, bg):
    sender = senders.queue("defer")
    sender.send_messages([ServiceBusMessage("step-2", message_id="d-2"), ServiceBusMessage("step-1", message_id="d-1")])
    with bg.receiver(lambda: client.get_queue_receiver("defer")) as receiver:
        first = _receive_one(receiver)
        assert first.message_id == "d-2"
        seq = first.sequence_number
        receiver.defer_message(first)
        assert queue_view(standin, "defer")["deferred_count"] == 1
        second = _receive_one(receiver)
        assert second.message_id == "d-1"  # the deferred one is not handed out again
        receiver.complete_message(second)
        assert receiver.receive_messages(max_message_count=1, max_wait_time=0.5) == []
        deferred = receiver.receive_deferred_messages([seq])
        assert len(deferred) == 1 and deferred[0].message_id == "d-2"
        assert int(deferred[0].state) == 1  # ServiceBusMessageState.DEFERRED
        assert deferred[0].lock_token is not None
        receiver.complete_message(deferred[0])  # settles through $management update-disposition
    assert queue_view(standin, "defer")["messages"] == []
    with ServiceBusClient.from_connection_string(standin.connection_string, retry_total=0) as no_retry:
        with no_retry.get_queue_receiver("defer") as receiver:
            with pytest.raises(MessageNotFoundError):
                receiver.receive_deferred_messages([seq])


def test_lock_expiry_redelivers_and_old_lock_is_lost(standin, client, senders, bg):
    sender = senders.queue("lock-expiry")
    sender.send_messages(ServiceBusMessage("slow", message_id="slow-1"))
    with bg.receiver(lambda: client.get_queue_receiver("lock-expiry")) as receiver:
        first = _receive_one(receiver)
        assert first.delivery_count == 0
        time.sleep(2.3)  # LockDuration PT2S
        second = _receive_one(receiver)
        assert second.message_id == "slow-1" and second.delivery_count == 1
        assert second.lock_token != first.lock_token
        with pytest.raises(MessageLockLostError):
            receiver.complete_message(first)  # echoed rejected + com.microsoft:message-lock-lost
        receiver.complete_message(second)
    assert queue_view(standin, "lock-expiry")["messages"] == []


def test_renew_message_lock(standin, client, senders, bg):
    sender = senders.queue("renew")
    sender.send_messages(ServiceBusMessage("long job"))
    with bg.receiver(lambda: client.get_queue_receiver("renew")) as receiver:
        msg = _receive_one(receiver)
        original = msg.locked_until_utc
        time.sleep(1.2)
        renewed = receiver.renew_message_lock(msg)
        assert renewed > original
        assert msg.locked_until_utc == renewed
        time.sleep(1.2)  # past the original lock, inside the renewed one
        receiver.complete_message(msg)
        assert receiver.receive_messages(max_message_count=1, max_wait_time=0.5) == []
    assert queue_view(standin, "renew")["messages"] == []


def test_lock_expiries_count_towards_max_delivery_count(standin, client, senders, bg):
    sender = senders.queue("mdc-expiry")
    sender.send_messages(ServiceBusMessage("never settled", message_id="ne-1"))
    with bg.receiver(lambda: client.get_queue_receiver("mdc-expiry")) as receiver:
        assert _receive_one(receiver).delivery_count == 0
        time.sleep(1.2)  # LockDuration PT1S
        assert _receive_one(receiver).delivery_count == 1
    view = wait_for(lambda: (v := queue_view(standin, "mdc-expiry"))["dead_letter_count"] == 1 and v, timeout=5)
    assert view, "message was not dead-lettered after MaxDeliveryCount lock expiries"
    assert view["dead_letter_messages"][0]["dead_letter_reason"] == "MaxDeliveryCountExceeded"


def test_prefetch_zero_message_flows_as_soon_as_credit_exists(standin, client, senders, bg):
    got = []
    with bg.receiver(lambda: client.get_queue_receiver("prefetch", prefetch_count=0)) as receiver:
        worker = threading.Thread(target=lambda: got.extend(receiver.receive_messages(max_message_count=1, max_wait_time=15)))
        started = time.monotonic()
        worker.start()
        time.sleep(0.5)  # the receive call is now waiting with one credit on the link
        sender = senders.queue("prefetch")
        sender.send_messages(ServiceBusMessage("flows on credit", message_id="pf-1"))
        worker.join(20)
        assert len(got) == 1 and got[0].message_id == "pf-1"
        assert time.monotonic() - started < 5, "message waited instead of flowing on the open credit"
        assert got[0].delivery_count == 0
        receiver.complete_message(got[0])
    assert queue_view(standin, "prefetch")["messages"] == []


def test_released_messages_go_back_without_counting_a_delivery(standin, client, senders, bg):
    sender = senders.queue("misc")
    sender.send_messages([ServiceBusMessage(f"r{i}", message_id=f"r{i}") for i in range(3)])
    with client.get_queue_receiver("misc", prefetch_count=10) as receiver:  # the test is about its close
        first = receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert len(first) == 1
        # the other two were prefetched: delivered and locked, sitting in the client's buffer
        assert wait_for(lambda: queue_view(standin, "misc")["locked_count"] == 3, timeout=5)
        receiver.complete_message(first[0])
    # closing the receiver released the prefetched deliveries (``drain_and_release_messages``)
    view = wait_for(lambda: (v := queue_view(standin, "misc"))["locked_count"] == 0 and v, timeout=5)
    assert view and [m["delivery_count"] for m in view["messages"]] == [0, 0]
    with bg.receiver(lambda: client.get_queue_receiver("misc")) as receiver:
        msgs = receiver.receive_messages(max_message_count=2, max_wait_time=5)
        if len(msgs) < 2:
            msgs += receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert [m.message_id for m in msgs] == ["r1", "r2"]
        assert [m.delivery_count for m in msgs] == [0, 0]
        for m in msgs:
            receiver.complete_message(m)


def test_abrupt_disconnect_keeps_lock_until_it_expires(standin, client, senders, bg):
    sender = senders.queue("drop")
    sender.send_messages(ServiceBusMessage("held by a crashing worker", message_id="drop-1"))
    script = textwrap.dedent(
        f"""
        import os
        from azure.servicebus import ServiceBusClient
        c = ServiceBusClient.from_connection_string({standin.connection_string!r})
        r = c.get_queue_receiver("drop")
        msgs = r.receive_messages(max_message_count=1, max_wait_time=10)
        print(len(msgs), flush=True)
        os._exit(0)  # no close, no settlement: the socket just goes away
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "1", out.stderr
    view = queue_view(standin, "drop")
    assert view["locked_count"] == 1  # still locked after the connection vanished
    assert view["messages"][0]["delivery_count"] == 0
    view = wait_for(lambda: (v := queue_view(standin, "drop"))["locked_count"] == 0 and v, timeout=5)
    assert view and view["messages"][0]["delivery_count"] == 1
    with bg.receiver(lambda: client.get_queue_receiver("drop")) as receiver:
        msg = _receive_one(receiver)
        assert msg.message_id == "drop-1" and msg.delivery_count == 1
        receiver.complete_message(msg)


def test_forward_dead_lettered_messages_sets_dead_letter_source(standin, client, senders, bg):
    sender = senders.queue("fwd-source")
    sender.send_messages(ServiceBusMessage("to be forwarded", message_id="fwd-1"))
    with bg.receiver(lambda: client.get_queue_receiver("fwd-source")) as receiver:
        receiver.dead_letter_message(_receive_one(receiver), reason="Nope", error_description="forward me")
    assert queue_view(standin, "fwd-source")["dead_letter_count"] == 0
    forwarded = queue_view(standin, "fwd-target")["messages"]
    assert [(m["message_id"], m["dead_letter_source"], m["dead_letter_reason"]) for m in forwarded] == [("fwd-1", "fwd-source", "Nope")]
    with bg.receiver(lambda: client.get_queue_receiver("fwd-target")) as receiver:
        msg = _receive_one(receiver)
        assert msg.message_id == "fwd-1"
        assert msg.dead_letter_source == "fwd-source"
        assert msg.dead_letter_reason == "Nope"
        receiver.complete_message(msg)


def test_forward_to_moves_messages_and_stops_loops(standin, client, senders, bg):
    senders.queue("fwd-chain").send_messages(ServiceBusMessage("hop", message_id="hop-1"))
    assert queue_view(standin, "fwd-chain")["messages"] == []
    assert [m["message_id"] for m in queue_view(standin, "fwd-chain-target")["messages"]] == ["hop-1"]
    senders.queue("loop-a").send_messages(ServiceBusMessage("round and round", message_id="loop-1"))
    views = [queue_view(standin, "loop-a"), queue_view(standin, "loop-b")]
    dead = [m for v in views for m in v["dead_letter_messages"]]
    assert [(m["message_id"], m["dead_letter_reason"]) for m in dead] == [("loop-1", "MaxTransferHopCountExceeded")]
    assert all(v["active_count"] == 0 for v in views)
