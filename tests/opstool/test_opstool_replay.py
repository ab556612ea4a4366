"""replay: a copy goes back to the queue with a new message id, then the dead-lettered message is completed; a crash
between the two duplicates and never loses; a dry run changes nothing."""
from __future__ import annotations

import json
import time

from dlq_helpers import (body, cloud_event, dead_letter_all, dlq_seq, message_for, peek, props, send, view)

APP_PROPS = {"tenant": "eu", "priority": 3, "crm-batch": "2026-05-01-07"}


def _wait_unlocked(servicebus, queue, timeout=15.0):
    """After a crash the broker releases the dead process's locks (the stand-in when the connection drops, Azure
    when LockDuration runs out); a re-run can only lock what is released."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dlq = view(servicebus, queue)["dead_letter_messages"]
        if all(m["locked_until_utc"] is None for m in dlq):
            return
        time.sleep(0.2)
    raise AssertionError("dead-lettered messages stayed locked")


def test_replay_sends_a_copy_with_a_new_id_and_completes_the_dead_letter(servicebus, session_queue, tool):
    cs, queue = servicebus.connection_string, session_queue
    event = cloud_event("acme")
    send(cs, queue, message_for(event, correlation_id="crm-7", application_properties=APP_PROPS))
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "auth0 503", expected=1, session_id="acme")
    seq = dlq_seq(cs, queue, event["id"])

    run = tool.run("replay", "--queue", queue, "--seq", str(seq))
    assert run.returncode == 0, run.stderr
    assert "replayed" in run.stdout and "replay summary: 1 replayed" in run.stdout

    assert peek(cs, queue, dead_letter=True) == []
    # Duplicate detection is on and has seen the original id: a message with it is dropped...
    send(cs, queue, message_for(event))
    queued = peek(cs, queue, session_id="acme")
    assert len(queued) == 1  # ...so only a copy with a new id can be there
    copy = queued[0]
    assert copy.message_id != event["id"]
    assert body(copy) == json.dumps(event).encode()
    assert (copy.session_id, copy.correlation_id, copy.content_type, copy.subject) == \
        ("acme", "crm-7", "application/cloudevents+json", "customer.created")
    assert props(copy) == {**APP_PROPS, "replay-original-message-id": event["id"], "replay-count": 1}
    assert event["id"] in run.stdout and copy.message_id in run.stdout


def test_a_second_replay_counts_up_and_keeps_the_first_message_id(servicebus, queue, tool):
    cs = servicebus.connection_string
    event = cloud_event("acme")
    send(cs, queue, message_for(event, application_properties={"tenant": "eu"}))
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "first outage", expected=1)
    assert tool.run("replay", "--queue", queue, "--all").returncode == 0
    first_copy_id = peek(cs, queue)[0].message_id
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "second outage", expected=1)  # it failed again

    listed = json.loads(tool.run("list", "--queue", queue, "--json").stdout)
    assert (listed["message_id"], listed["replay_count"]) == (first_copy_id, 1)
    assert tool.run("replay", "--queue", queue, "--all").returncode == 0
    copy = peek(cs, queue)[0]
    assert props(copy) == {"tenant": "eu", "replay-original-message-id": event["id"], "replay-count": 2}
    assert copy.message_id not in (event["id"], first_copy_id)


def test_a_crash_between_send_and_complete_duplicates_and_a_rerun_finishes(servicebus, queue, tool):
    cs = servicebus.connection_string
    events = [cloud_event("acme"), cloud_event("beta")]
    send(cs, queue, *[message_for(e) for e in events])
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "auth0 503", expected=2)

    crashed = tool.run("replay", "--queue", queue, "--all", "--yes", env={"OPSTOOL_CRASH_AFTER_SEND": "1"})
    assert crashed.returncode == 99, crashed.stderr
    assert "OPSTOOL_CRASH_AFTER_SEND" in crashed.stderr
    _wait_unlocked(servicebus, queue)
    # The first copy was sent and its dead letter not completed: both exist. Nothing is lost.
    assert sorted(m.message_id for m in peek(cs, queue, dead_letter=True)) == sorted(e["id"] for e in events)
    [copy] = peek(cs, queue)
    assert props(copy)["replay-original-message-id"] == events[0]["id"]

    rerun = tool.run("replay", "--queue", queue, "--all", "--yes")
    assert rerun.returncode == 0, rerun.stderr
    assert "replay summary: 2 replayed" in rerun.stdout
    assert peek(cs, queue, dead_letter=True) == []
    queued = peek(cs, queue)
    # The re-run's copy of the first event has the same message id as the crashed run's, and duplicate detection
    # dropped it: one copy per event.
    assert sorted(props(m)["replay-original-message-id"] for m in queued) == sorted(e["id"] for e in events)
    assert copy.message_id in {m.message_id for m in queued}


def test_without_duplicate_detection_the_rerun_leaves_an_identical_duplicate(servicebus, plain_queue, tool):
    cs, queue = servicebus.connection_string, plain_queue
    event = cloud_event("acme")
    send(cs, queue, message_for(event))
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "auth0 503", expected=1)
    assert tool.run("replay", "--queue", queue, "--all", env={"OPSTOOL_CRASH_AFTER_SEND": "1"}).returncode == 99
    _wait_unlocked(servicebus, queue)
    assert [m.message_id for m in peek(cs, queue, dead_letter=True)] == [event["id"]]
    assert tool.run("replay", "--queue", queue, "--all").returncode == 0
    assert peek(cs, queue, dead_letter=True) == []
    copies = peek(cs, queue)
    # Two copies of one event: the same message id and the same body (event id), which the app audits once.
    assert len(copies) == 2
    assert copies[0].message_id == copies[1].message_id
    assert body(copies[0]) == body(copies[1]) == json.dumps(event).encode()


def test_dry_run_changes_nothing(servicebus, queue, tool, tmp_path):
    cs = servicebus.connection_string
    events = [cloud_event("acme"), cloud_event("beta")]
    send(cs, queue, *[message_for(e) for e in events])
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "auth0 503", expected=2)
    before = view(servicebus, queue)

    replay = tool.run("replay", "--queue", queue, "--all", "--dry-run", "--json")
    assert replay.returncode == 0, replay.stderr
    lines = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [r["result"] for r in lines[:-1]] == ["would-replay", "would-replay"]
    assert [r["message_id"] for r in lines[:-1]] == [e["id"] for e in events]
    assert all(r["new_message_id"] and r["replay_count"] == 1 for r in lines[:-1])
    assert lines[-1] == {"summary": {"command": "replay", "dry_run": True, "would-replay": 2}}

    export = tmp_path / "export.jsonl"
    purge = tool.run("purge", "--queue", queue, "--all", "--dry-run", "--export", str(export))
    assert purge.returncode == 0, purge.stderr
    assert "would-purge" in purge.stdout and "nothing was changed" in purge.stdout
    assert not export.exists()
    assert view(servicebus, queue) == before

    # What the dry run announced is what a real run does.
    assert tool.run("replay", "--queue", queue, "--all", "--yes").returncode == 0
    assert sorted(m.message_id for m in peek(cs, queue)) == sorted(r["new_message_id"] for r in lines[:-1])


def test_filters_choose_what_is_replayed_and_long_runs_show_progress(servicebus, queue, tool):
    cs = servicebus.connection_string
    acme = [cloud_event(f"acme{i:02d}") for i in range(12)]
    other = cloud_event("other", kind="removed")
    send(cs, queue, *[message_for(e) for e in acme + [other]])
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "auth0 503", expected=13)

    run = tool.run("replay", "--queue", queue, "--type", "customer.created", "--yes", "--json")
    assert run.returncode == 0, run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert results[-1]["summary"]["replayed"] == 12
    assert "replay: 10/12" in run.stderr and "replay: 12/12" in run.stderr
    assert [m.message_id for m in peek(cs, queue, dead_letter=True)] == [other["id"]]
    assert sorted(props(m)["replay-original-message-id"] for m in peek(cs, queue)) == sorted(e["id"] for e in acme)


def test_a_message_that_is_gone_is_skipped_not_failed(servicebus, queue, tool):
    cs = servicebus.connection_string
    event = cloud_event("acme")
    send(cs, queue, message_for(event))
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "auth0 503", expected=1)
    seq = dlq_seq(cs, queue, event["id"])
    assert tool.run("replay", "--queue", queue, "--seq", str(seq)).returncode == 0
    again = tool.run("replay", "--queue", queue, "--seq", str(seq))
    assert again.returncode == 0
    assert "skipped" in again.stdout and "not in the dead-letter queue" in again.stdout
    assert len(peek(cs, queue)) == 1


def test_a_failed_send_is_reported_exits_1_and_keeps_the_message(tmp_path):
    """A copy the broker refuses (here: over the maximum message size, because the copy carries more properties
    than the original) fails that message alone; the others are replayed."""
    from azure.servicebus import ServiceBusMessage
    from azure.servicebus._transport._pyamqp_transport import PyamqpTransport

    from dlq_helpers import Tool, standin_config
    from emulators.servicebus import ServiceBusStandIn

    limit = 4096
    sb = ServiceBusStandIn(standin_config({"small": {}}, pool=1), host="127.0.0.1", port=0, max_message_size=limit)
    sb.start()
    try:
        cs, queue = sb.connection_string, "small-0"

        def size(n):
            msg = ServiceBusMessage(b"x" * n, message_id="big")
            return PyamqpTransport.get_message_encoded_size(
                PyamqpTransport.to_outgoing_amqp_message(msg.raw_amqp_message))

        n = limit - 200
        while size(n + 1) <= limit - 40:
            n += 1
        small = cloud_event("acme")
        send(cs, queue, ServiceBusMessage(b"x" * n, message_id="big"), message_for(small))
        dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "too big to handle", expected=2)

        run = Tool(sb, tmp_path).run("replay", "--queue", queue, "--all", "--yes")
        assert run.returncode == 1, run.stdout + run.stderr
        assert "replay summary: 1 replayed, 1 failed" in run.stdout
        assert "the copy could not be sent" in run.stdout
        assert [m.message_id for m in peek(cs, queue, dead_letter=True)] == ["big"]
        assert [props(m)["replay-original-message-id"] for m in peek(cs, queue)] == [small["id"]]
    finally:
        sb.stop()


def test_a_message_locked_elsewhere_fails_with_advice_and_a_later_run_replays_it(servicebus, queue, tool):
    from azure.servicebus import AutoLockRenewer, ServiceBusClient, ServiceBusSubQueue

    cs = servicebus.connection_string
    events = [cloud_event("acme"), cloud_event("beta")]
    send(cs, queue, *[message_for(e) for e in events])
    dead_letter_all(cs, queue, "MaxDeliveryCountExceeded", "auth0 503", expected=2)
    with ServiceBusClient.from_connection_string(cs) as client:
        with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as other:
            [locked] = other.receive_messages(max_message_count=1, max_wait_time=5)  # another operator's lock
            assert locked.message_id == events[0]["id"]
            # The queue's lock is 5 s; the other operator keeps it, however long the tool takes to start.
            renewer = AutoLockRenewer(max_lock_renewal_duration=120)
            renewer.register(other, locked)
            run = tool.run("replay", "--queue", queue, "--all", "--yes", "--max-wait", "1")
            assert run.returncode == 1, run.stdout + run.stderr
            assert "replay summary: 1 replayed, 1 failed" in run.stdout
            assert "still in the dead-letter queue but locked" in run.stdout
            renewer.close()
            other.abandon_message(locked)
    again = tool.run("replay", "--queue", queue, "--all", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "replay summary: 1 replayed" in again.stdout
    assert sorted(props(m)["replay-original-message-id"] for m in peek(cs, queue)) == sorted(e["id"] for e in events)
