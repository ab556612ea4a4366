"""Send / receive basics against the stand-in with the real azure-servicebus client."""

from __future__ import annotations

import datetime
import uuid

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.exceptions import MessageSizeExceededError

from sb_helpers import queue_view, wait_for

pytestmark = pytest.mark.timeout(60)

UTC = datetime.timezone.utc


def test_send_and_receive_peek_lock_fields(standin, client, senders, bg):
    before = datetime.datetime.now(UTC)
    sender = senders.queue("basic")
    sender.send_messages(
        ServiceBusMessage(
            '{"customer": 42}',
            message_id="msg-1",
            correlation_id="corr-1",
            content_type="application/json",
            subject="customer.created",
            application_properties={"tenant": "contoso", "attempt": 3},
            time_to_live=datetime.timedelta(minutes=5),
        )
    )
    sender.send_messages(ServiceBusMessage("second", message_id="msg-2"))
    with bg.receiver(lambda: client.get_queue_receiver("basic", max_wait_time=5)) as receiver:
        msgs = receiver.receive_messages(max_message_count=2, max_wait_time=5)
        if len(msgs) < 2:
            msgs += receiver.receive_messages(max_message_count=2 - len(msgs), max_wait_time=5)
        assert [str(m) for m in msgs] == ['{"customer": 42}', "second"]
        first, second = msgs
        assert first.message_id == "msg-1"
        assert first.correlation_id == "corr-1"
        assert first.content_type == "application/json"
        assert first.subject == "customer.created"
        assert first.application_properties == {b"tenant": b"contoso", b"attempt": 3}
        assert first.session_id is None
        assert first.delivery_count == 0  # present on the wire even when 0
        assert first.time_to_live == datetime.timedelta(minutes=5)
        assert isinstance(first.lock_token, uuid.UUID)
        assert first.sequence_number >= 1 and second.sequence_number > first.sequence_number
        assert before - datetime.timedelta(seconds=1) <= first.enqueued_time_utc <= datetime.datetime.now(UTC)
        lock_left = (first.locked_until_utc - datetime.datetime.now(UTC)).total_seconds()
        assert 3 < lock_left <= 5.5  # LockDuration PT5S
        view = queue_view(standin, "basic")
        assert view["active_count"] == 2 and view["locked_count"] == 2
        receiver.complete_message(first)
        receiver.complete_message(second)
    view = queue_view(standin, "basic")
    assert view["active_count"] == 0 and view["messages"] == []


def test_batch_is_split_into_messages(standin, client, senders, bg):
    sender = senders.queue("batch")
    batch = sender.create_message_batch()
    for i in range(5):
        batch.add_message(ServiceBusMessage(f"item-{i}", message_id=f"b-{i}", application_properties={"i": i}))
    sender.send_messages(batch)
    # the link's max-message-size / com.microsoft:max-message-batch-size (256 KiB) reach the client
    assert sender.create_message_batch().max_size_in_bytes == 256 * 1024
    with pytest.raises(MessageSizeExceededError):
        sender.send_messages(ServiceBusMessage(b"x" * (300 * 1024)))
    view = queue_view(standin, "batch")
    assert [m["message_id"] for m in view["messages"]] == [f"b-{i}" for i in range(5)]
    with bg.receiver(lambda: client.get_queue_receiver("batch", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)) as receiver:
        got = []
        while len(got) < 5:
            batch_msgs = receiver.receive_messages(max_message_count=5, max_wait_time=3)
            assert batch_msgs, "batch messages did not arrive"
            got += batch_msgs
    assert [str(m) for m in got] == [f"item-{i}" for i in range(5)]
    assert [m.application_properties[b"i"] for m in got] == list(range(5))
    seqs = [m.sequence_number for m in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


def test_receive_and_delete_removes_messages(standin, client, senders, bg):
    sender = senders.queue("recv-delete")
    sender.send_messages([ServiceBusMessage(f"m{i}") for i in range(3)])
    with bg.receiver(lambda: client.get_queue_receiver("recv-delete", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)) as receiver:
        got = []
        while len(got) < 3:
            more = receiver.receive_messages(max_message_count=3, max_wait_time=3)
            assert more
            got += more
        assert all(m.lock_token is None for m in got)
        assert [m.delivery_count for m in got] == [0, 0, 0]
    assert queue_view(standin, "recv-delete")["messages"] == []


def test_peek_from_sequence_number_and_empty_peek(standin, client, senders, bg):
    with bg.receiver(lambda: client.get_queue_receiver("peek")) as receiver:
        assert receiver.peek_messages(max_message_count=5) == []  # 204 from $management
        sender = senders.queue("peek")
        sender.send_messages([ServiceBusMessage(f"p{i}", message_id=f"p{i}") for i in range(5)])
        peeked = receiver.peek_messages(max_message_count=10, sequence_number=0)
        assert [m.message_id for m in peeked] == [f"p{i}" for i in range(5)]
        third = peeked[2].sequence_number
        later = receiver.peek_messages(max_message_count=2, sequence_number=third)
        assert [m.message_id for m in later] == ["p2", "p3"]
        assert all(m.lock_token is None for m in later)
        # peeking neither locks nor counts a delivery
        assert queue_view(standin, "peek")["locked_count"] == 0
        msgs = receiver.receive_messages(max_message_count=5, max_wait_time=3)
        assert msgs and [m.delivery_count for m in msgs] == [0] * len(msgs)
        for m in msgs:
            receiver.complete_message(m)
        rest = 5 - len(msgs)
        while rest:
            more = receiver.receive_messages(max_message_count=rest, max_wait_time=3)
            assert more
            for m in more:
                receiver.complete_message(m)
            rest -= len(more)
    assert queue_view(standin, "peek")["messages"] == []


def test_duplicate_detection_drops_repeated_message_id(standin, client, senders, bg):
    sender = senders.queue("dedupe")
    sender.send_messages(ServiceBusMessage("one", message_id="order-1"))
    sender.send_messages(ServiceBusMessage("one again", message_id="order-1"))  # accepted, dropped
    sender.send_messages(ServiceBusMessage("two", message_id="order-2"))
    view = queue_view(standin, "dedupe")
    assert [m["message_id"] for m in view["messages"]] == ["order-1", "order-2"]
    with bg.receiver(lambda: client.get_queue_receiver("dedupe", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)) as receiver:
        got = receiver.receive_messages(max_message_count=5, max_wait_time=2)
        got += receiver.receive_messages(max_message_count=5, max_wait_time=1)
    assert [str(m) for m in got] == ["one", "two"]


def test_ttl_expiry_dead_letters_with_reason(standin, client, senders, bg):
    sender = senders.queue("ttl-dlq")
    sender.send_messages(ServiceBusMessage("short-lived", message_id="ttl-1"))
    view = wait_for(lambda: (v := queue_view(standin, "ttl-dlq"))["dead_letter_count"] == 1 and v, timeout=5)
    assert view and view["active_count"] == 0
    with bg.receiver(lambda: client.get_queue_receiver("ttl-dlq", sub_queue=ServiceBusSubQueue.DEAD_LETTER)) as dlq:
        msgs = dlq.receive_messages(max_message_count=1, max_wait_time=3)
        assert len(msgs) == 1
        assert msgs[0].message_id == "ttl-1"
        assert msgs[0].dead_letter_reason == "TTLExpiredException"
        assert msgs[0].dead_letter_error_description
        dlq.complete_message(msgs[0])
    assert queue_view(standin, "ttl-dlq")["dead_letter_count"] == 0


def test_ttl_expiry_without_dead_lettering_drops(standin, client, senders, bg):
    sender = senders.queue("ttl-drop")
    sender.send_messages(ServiceBusMessage("gone soon"))
    assert queue_view(standin, "ttl-drop")["active_count"] == 1
    assert wait_for(lambda: queue_view(standin, "ttl-drop")["active_count"] == 0, timeout=5)
    assert queue_view(standin, "ttl-drop")["dead_letter_count"] == 0


def test_message_time_to_live_shorter_than_entity_default(standin, client, senders, bg):
    sender = senders.queue("ttl-msg")
    sender.send_messages(ServiceBusMessage("per-message ttl", time_to_live=datetime.timedelta(seconds=1)))
    sender.send_messages(ServiceBusMessage("keeps"))
    view = wait_for(lambda: (v := queue_view(standin, "ttl-msg"))["dead_letter_count"] == 1 and v, timeout=5)
    assert view and view["active_count"] == 1
    assert view["dead_letter_messages"][0]["dead_letter_reason"] == "TTLExpiredException"


def test_scheduled_messages_appear_at_their_time_and_can_be_cancelled(standin, client, senders, bg):
    sender = senders.queue("schedule")
    with bg.receiver(lambda: client.get_queue_receiver("schedule")) as receiver:
        when = datetime.datetime.now(UTC) + datetime.timedelta(seconds=1.5)
        keep, cancel = sender.schedule_messages(
            [ServiceBusMessage("later", message_id="s-keep"), ServiceBusMessage("never", message_id="s-cancel")], when
        )
        assert cancel > keep >= 1
        view = queue_view(standin, "schedule")
        assert view["scheduled_count"] == 2 and view["active_count"] == 0
        sender.cancel_scheduled_messages(cancel)
        assert queue_view(standin, "schedule")["scheduled_count"] == 1
        peeked = receiver.peek_messages(max_message_count=5)
        assert [m.message_id for m in peeked] == ["s-keep"]
        assert int(peeked[0].state) == 2  # ServiceBusMessageState.SCHEDULED
        assert receiver.receive_messages(max_message_count=1, max_wait_time=0.3) == []
        msgs = receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert datetime.datetime.now(UTC) >= when
        assert len(msgs) == 1 and msgs[0].message_id == "s-keep"
        assert msgs[0].sequence_number == keep
        assert abs((msgs[0].scheduled_enqueue_time_utc - when).total_seconds()) < 0.01
        assert msgs[0].enqueued_time_utc >= when - datetime.timedelta(milliseconds=50)
        receiver.complete_message(msgs[0])
    assert queue_view(standin, "schedule")["messages"] == []
