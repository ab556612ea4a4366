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


def test_an_event_naming_the_lock_token_cannot_be_settled_and_ends_as_max_delivery_count(app_host, stack_env, ledger,
                                                                                         local_stack):
    # The Functions host copies the body's "locktoken" over the message's LockToken: the function holds a token no
    # delivery has, so it cannot dead-letter the event it refused. The host's redeliveries end it in the
    # dead-letter queue; the ledger says why, without the message id the sender may have forged as well.
    forged = str(uuid.uuid4())
    event = {**build_event("created", "worker-forger", profile="oem"), "locktoken": forged}
    with ServiceBusClient.from_connection_string(stack_env["ServiceBusConnection"]) as client, \
            client.get_queue_sender(stack_env["CUSTOMER_EVENTS_QUEUE"]) as sender:
        sender.send_messages(ServiceBusMessage(json.dumps(event), message_id=event["id"],
                                               content_type="application/cloudevents+json"))
    [dead] = wait_until(lambda: _dead_letters(stack_env, event["id"]), timeout=120, what="the dead letter")
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    refused = [status for rpc, subject, status in app_host.settlement.history if subject == forged]
    assert refused and set(refused) == {"FAILED_PRECONDITION"}  # every attempt named the forged token
    audits = [a for a in ledger.list_audit("worker-forger") if a.outcome == "rejected"]
    assert audits and audits[0].reason.startswith("locktoken: is the name of a Service Bus message property")
    assert audits[0].message_id is None
    assert "clients.create" not in local_stack.control("auth0").calls()["calls"]
