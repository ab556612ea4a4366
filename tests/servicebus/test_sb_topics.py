"""Topics: every message is copied to each subscription whose rule matches."""

from __future__ import annotations

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue

from sb_helpers import wait_for

pytestmark = pytest.mark.timeout(60)


def _sub_view(standin, sub):
    return standin.snapshot()["topics"]["events"]["subscriptions"][sub]


def test_topic_fan_out_and_correlation_filter(standin, client, senders, bg):
    sender = senders.topic("events")
    sender.send_messages(
        ServiceBusMessage("gold created", message_id="t-1", subject="created", application_properties={"tier": "gold"})
    )
    sender.send_messages(
        ServiceBusMessage("silver created", message_id="t-2", subject="created", application_properties={"tier": "silver"})
    )
    sender.send_messages(ServiceBusMessage("gold deleted", message_id="t-3", subject="deleted", application_properties={"tier": "gold"}))
    assert [m["message_id"] for m in _sub_view(standin, "all")["messages"]] == ["t-1", "t-2", "t-3"]
    assert [m["message_id"] for m in _sub_view(standin, "gold-created")["messages"]] == ["t-1"]

    with bg.receiver(lambda: client.get_subscription_receiver("events", "all")) as receiver:
        got = []
        while len(got) < 3:
            more = receiver.receive_messages(max_message_count=3, max_wait_time=3)
            assert more
            got += more
        assert [m.message_id for m in got] == ["t-1", "t-2", "t-3"]
        # the subscription copy keeps the topic's sequence number
        seqs = [m.sequence_number for m in got]
        assert seqs == sorted(seqs)
        receiver.dead_letter_message(got[2], reason="Audit", error_description="rejected by audit")
        for m in got[:2]:
            receiver.complete_message(m)
    with bg.receiver(lambda: client.get_subscription_receiver("events", "gold-created", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)) as receiver:
        msgs = receiver.receive_messages(max_message_count=2, max_wait_time=3)
        assert [m.message_id for m in msgs] == ["t-1"]
        assert msgs[0].application_properties == {b"tier": b"gold"}
    with bg.receiver(lambda: client.get_subscription_receiver("events", "all", sub_queue=ServiceBusSubQueue.DEAD_LETTER)) as dlq:
        msgs = dlq.receive_messages(max_message_count=1, max_wait_time=3)
        assert [m.message_id for m in msgs] == ["t-3"] and msgs[0].dead_letter_reason == "Audit"
        dlq.complete_message(msgs[0])
    assert wait_for(lambda: _sub_view(standin, "all")["messages"] == [] and _sub_view(standin, "all")["dead_letter_count"] == 0)


def test_topic_scheduled_message_reaches_subscriptions(standin, client, senders, bg):
    import datetime

    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    sender = senders.topic("events")
    (seq,) = sender.schedule_messages(ServiceBusMessage("scheduled", subject="created", application_properties={"tier": "gold"}), when)
    assert standin.snapshot()["topics"]["events"]["scheduled_count"] == 1
    assert wait_for(lambda: len(_sub_view(standin, "gold-created")["messages"]) == 1, timeout=5)
    with bg.receiver(lambda: client.get_subscription_receiver("events", "gold-created")) as receiver:
        msgs = receiver.receive_messages(max_message_count=1, max_wait_time=3)
        assert msgs[0].sequence_number == seq and str(msgs[0]) == "scheduled"
        receiver.complete_message(msgs[0])
    with bg.receiver(lambda: client.get_subscription_receiver("events", "all", receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)) as receiver:
        assert [m.sequence_number for m in receiver.receive_messages(max_message_count=1, max_wait_time=3)] == [seq]
