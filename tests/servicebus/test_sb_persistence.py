"""The stand-in with a state file (what `make run` starts): a restart keeps what Service Bus would keep.

Each test starts its own stand-ins on one file; the SDK sees the second one as the same namespace, restarted.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusMessageState, ServiceBusSubQueue

from emulators.servicebus import ServiceBusStandIn
from emulators.servicebus.config import queue_entry
from sb_helpers import queue_view, wait_for

CONFIG = {"UserConfig": {"Namespaces": [{"Name": "sbemulatorns", "Queues": [
    queue_entry("kept", MaxDeliveryCount=5, RequiresDuplicateDetection=True, LockDuration="PT1M"),
    queue_entry("kept-sessions", RequiresSession=True),
]}], "Logging": {"Type": "Console"}}}


def _peek(client, queue, sub_queue=None):
    with client.get_queue_receiver(queue, sub_queue=sub_queue) as receiver:
        return {m.message_id: m for m in receiver.peek_messages(max_message_count=50)}


def test_a_restart_keeps_messages_dead_letters_counts_sequence_numbers_and_duplicate_history(tmp_path):
    state = tmp_path / "servicebus.json"
    first = ServiceBusStandIn(CONFIG, state_file=state).start()
    try:
        with ServiceBusClient.from_connection_string(first.connection_string) as client:
            with client.get_queue_sender("kept") as sender:
                sender.send_messages([
                    ServiceBusMessage("poison", message_id="dead", subject="created",
                                      application_properties={"customer": "acme", "attempt": 2}),
                    ServiceBusMessage("held", message_id="locked"),
                    ServiceBusMessage("waiting", message_id="active", content_type="application/json"),
                ])
                later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
                [scheduled_seq] = sender.schedule_messages(ServiceBusMessage("later", message_id="scheduled"), later)
            with client.get_queue_receiver("kept") as receiver:
                dead, held = receiver.receive_messages(max_message_count=2, max_wait_time=5)
                receiver.dead_letter_message(dead, reason="UnknownProfile", error_description="no profile 'gold'")
        # `held` is still locked (for a minute) when the stand-in stops.
        assert queue_view(first, "kept")["locked_count"] == 1
    finally:
        first.stop()

    second = ServiceBusStandIn(CONFIG, state_file=state).start()
    try:
        with ServiceBusClient.from_connection_string(second.connection_string) as client:
            main = _peek(client, "kept")
            assert set(main) == {"locked", "active", "scheduled"}
            # The lock did not outlive the stand-in: the message is back, one delivery counted (as a lapsed lock).
            assert main["locked"].delivery_count == 1 and main["locked"].state == ServiceBusMessageState.ACTIVE
            assert main["active"].delivery_count == 0 and main["active"].content_type == "application/json"
            assert main["scheduled"].state == ServiceBusMessageState.SCHEDULED
            assert main["scheduled"].sequence_number == scheduled_seq
            [dead] = _peek(client, "kept", ServiceBusSubQueue.DEAD_LETTER).values()
            assert dead.message_id == "dead" and dead.subject == "created" and str(dead) == "poison"
            assert (dead.dead_letter_reason, dead.dead_letter_error_description) == ("UnknownProfile",
                                                                                     "no profile 'gold'")
            assert dead.application_properties[b"customer"] == b"acme"
            assert dead.application_properties[b"attempt"] == 2
            assert dead.sequence_number == 1 and main["locked"].sequence_number == 2

            with client.get_queue_sender("kept") as sender:
                # The duplicate-detection history came back too: a resend of a kept id is dropped.
                sender.send_messages([ServiceBusMessage("again", message_id="active"),
                                      ServiceBusMessage("new", message_id="new")])
            after = _peek(client, "kept")
            assert str(after["active"]) == "waiting"
            assert after["new"].sequence_number == scheduled_seq + 1  # numbering goes on

            with client.get_queue_receiver("kept", max_wait_time=5) as receiver:
                got = {m.message_id: m for m in receiver.receive_messages(max_message_count=3, max_wait_time=5)}
                assert set(got) == {"locked", "active", "new"}
                for message in got.values():
                    receiver.complete_message(message)
    finally:
        second.stop()
    doc = json.loads(state.read_text())
    assert sorted(m["sequence_number"] for m in doc["queues"]["kept"]["messages"]) == [1, scheduled_seq]


def test_changes_reach_the_file_without_a_stop_and_session_state_is_kept(tmp_path):
    state = tmp_path / "servicebus.json"
    running = ServiceBusStandIn(CONFIG, state_file=state).start()
    try:
        with ServiceBusClient.from_connection_string(running.connection_string) as client:
            with client.get_queue_sender("kept-sessions") as sender:
                sender.send_messages(ServiceBusMessage("first", session_id="acme", message_id="s1"))
            with client.get_queue_receiver("kept-sessions", session_id="acme") as receiver:
                receiver.session.set_state(b"step-1")

            def saved():
                doc = json.loads(state.read_text()) if state.exists() else {}
                entity = doc.get("queues", {}).get("kept-sessions", {})
                return entity.get("messages") and entity.get("session_states")

            assert wait_for(saved, timeout=10)
        # As if the process had been killed here: a copy of the file as it is, without the stop's final write.
        crashed = tmp_path / "crashed.json"
        shutil.copy(state, crashed)
    finally:
        running.stop()

    again = ServiceBusStandIn(CONFIG, state_file=crashed).start()
    try:
        assert [m["message_id"] for m in queue_view(again, "kept-sessions")["messages"]] == ["s1"]
        with ServiceBusClient.from_connection_string(again.connection_string) as client:
            with client.get_queue_receiver("kept-sessions", session_id="acme") as receiver:
                assert receiver.session.get_state() == b"step-1"
    finally:
        again.stop()


def test_an_unreadable_state_file_is_set_aside_and_the_stand_in_starts_empty(tmp_path):
    state = tmp_path / "servicebus.json"
    state.write_text("{not json")
    standin = ServiceBusStandIn(CONFIG, state_file=state).start()
    try:
        assert queue_view(standin, "kept")["messages"] == []
        assert (tmp_path / "servicebus.json.unreadable").read_text() == "{not json"
    finally:
        standin.stop()
