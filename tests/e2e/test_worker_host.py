"""The app under Microsoft's worker library, end to end: the library indexes and invokes ``function_app.py`` in the
host's worker process, and the settlement package's own gRPC client settles with the host. The host never imports
the app, and what the function settled is counted at the host's Settlement service."""
from __future__ import annotations

import json
import os
import uuid

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSubQueue

from devtools.send import build_event, send_events
from devtools.waiting import wait_until

pytestmark = pytest.mark.timeout(180)


def _dead_letters(stack_env, message_id: str):
    with ServiceBusClient.from_connection_string(stack_env["ServiceBusConnection"]) as client, \
            client.get_queue_receiver(stack_env["CUSTOMER_EVENTS_QUEUE"], sub_queue=ServiceBusSubQueue.DEAD_LETTER,
                                      max_wait_time=1) as dlq:
        return [m for m in dlq.peek_messages(max_message_count=200) if m.message_id == message_id]


def test_the_library_indexes_and_invokes_the_app_and_a_poison_event_is_dead_lettered_by_its_client(
        app_host, stack_env, ledger):
    # Indexed by the library in another process: its metadata carries the library's own mark.
    indexed = {f.name: f for f in app_host.channel.functions}
    assert set(indexed) == {"customer_events", "drift_reconciliation"}
    assert dict(indexed["customer_events"].metadata.properties).get("worker_indexed") == "True"
    assert app_host.channel.worker_pid not in (None, os.getpid())

    event = build_event("created", "worker-umbrella", profile="reseller")  # a profile nobody configured
    send_events([event], stack_env)
    [dead] = wait_until(lambda: _dead_letters(stack_env, event["id"]), timeout=60, what="the dead letter")
    assert dead.dead_letter_reason == "UnknownProfile" and dead.delivery_count == 0  # its first delivery
    calls = [(rpc, status) for rpc, subject, status in app_host.settlement.history if subject == event["id"]]
    assert calls == [("Deadletter", "ok")]  # one Deadletter RPC, answered by this host, nothing else
    [audit] = ledger.list_audit("worker-umbrella")
    assert audit.outcome == "rejected" and "unknown profile 'reseller'" in audit.reason


def test_an_event_naming_the_lock_token_is_refused_at_once_with_the_real_lock_token(app_host, stack_env, ledger,
                                                                                     local_stack):
    # Under a string binding the Functions host would copy the body's "locktoken" over the message's LockToken, and
    # the function could not settle the event it refused. The app binds the body as bytes, so nothing of the body
    # reaches the metadata: the event is dead-lettered on its first delivery with the message's own lock token.
    forged = str(uuid.uuid4())
    event = {**build_event("created", "worker-forger", profile="oem"), "locktoken": forged, "DeliveryCount": "abc"}
    with ServiceBusClient.from_connection_string(stack_env["ServiceBusConnection"]) as client, \
            client.get_queue_sender(stack_env["CUSTOMER_EVENTS_QUEUE"]) as sender:
        sender.send_messages(ServiceBusMessage(json.dumps(event), message_id=event["id"],
                                               content_type="application/cloudevents+json"))
    [dead] = wait_until(lambda: _dead_letters(stack_env, event["id"]), timeout=60, what="the dead letter")
    assert dead.dead_letter_reason == "InvalidEvent" and dead.delivery_count == 0  # its first delivery
    assert dead.dead_letter_error_description.startswith("DeliveryCount: is the name of a Service Bus message")
    calls = [(rpc, status) for rpc, subject, status in app_host.settlement.history if subject == event["id"]]
    assert calls == [("Deadletter", "ok")]
    assert not [s for _, s, _ in app_host.settlement.history if s == forged]
    audits = [a for a in ledger.list_audit("worker-forger") if a.outcome == "rejected"]
    assert audits and audits[0].reason.startswith("DeliveryCount: is the name of a Service Bus message property")
    assert "clients.create" not in local_stack.control("auth0").calls()["calls"]
