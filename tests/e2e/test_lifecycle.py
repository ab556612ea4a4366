"""End to end: events sent with the Service Bus SDK, received by the local Functions host running the unchanged
function app, applied to every stand-in; removal removes it; a bad event ends in the dead-letter queue with the
ledger's reason; no secret leaks into the logs."""
from __future__ import annotations

import logging

import pytest

from devtools.send import build_event, send_events
from devtools.waiting import wait_until
from emulators.inspect import view_customers, view_stack
from tests.conftest import customer_status

pytestmark = pytest.mark.timeout(180)


def _dead_letters(stack_env):
    from azure.servicebus import ServiceBusClient, ServiceBusSubQueue
    with ServiceBusClient.from_connection_string(stack_env["ServiceBusConnection"]) as client:
        with client.get_queue_receiver(stack_env["CUSTOMER_EVENTS_QUEUE"],
                                       sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
            return receiver.peek_messages(max_message_count=100)


def _send_raw(stack_env, event: dict, message_id: str) -> None:
    import json
    from azure.servicebus import ServiceBusClient, ServiceBusMessage
    with ServiceBusClient.from_connection_string(stack_env["ServiceBusConnection"]) as client:
        with client.get_queue_sender(stack_env["CUSTOMER_EVENTS_QUEUE"]) as sender:
            sender.send_messages(ServiceBusMessage(json.dumps(event), message_id=message_id,
                                                   session_id=event["data"]["customerId"]))


def test_created_duplicate_removed_and_a_bad_event(app_host, ledger, stack_env, local_stack, caplog):
    caplog.set_level(logging.INFO)
    created = build_event("created", "e2e-acme", profile="oem")
    send_events([created], stack_env)
    wait_until(lambda: customer_status(ledger, "e2e-acme") == "provisioned", timeout=30, what="acme provisioned")
    acme = view_stack(local_stack).of("e2e-acme")
    assert len(acme.auth0_applications) == 1 and acme.secrets and acme.authorization_servers
    assert list(acme.subscriptions.values()) == ["active"]
    record = ledger.get_customer("e2e-acme")[0]
    assert record.auth0_client_id == acme.auth0_applications[0]
    assert record.keyvault_secret_name == acme.secrets[0]

    # The same event again under a new message id (a CRM resend after Service Bus's duplicate-detection window,
    # or a replay): the app sees the event id it applied, and nothing more is created.
    _send_raw(stack_env, created, message_id="resend-1")
    wait_until(lambda: any(a.outcome == "applied" and a.attempts >= 2 for a in ledger.list_audit("e2e-acme")),
               timeout=30, what="the duplicate to be audited")
    assert len(view_stack(local_stack).of("e2e-acme").auth0_applications) == 1

    send_events([build_event("removed", "e2e-acme")], stack_env)
    wait_until(lambda: customer_status(ledger, "e2e-acme") == "removed", timeout=30, what="acme removed")
    view = view_customers(local_stack, ["e2e-acme"])
    assert not view.of("e2e-acme").live and view.unattributed == []

    bad = build_event("invalid", "e2e-hooli")
    send_events([bad], stack_env)
    dead = wait_until(lambda: [m for m in _dead_letters(stack_env) if m.message_id == bad["id"]], timeout=60,
                      what="the bad event in the dead-letter queue")
    # Dead-lettered by the function on its first delivery, with the rule (not after MaxDeliveryCount redeliveries).
    assert (dead[0].dead_letter_reason, dead[0].dead_letter_error_description) == ("InvalidEvent",
                                                                                   "data.profile: is required")
    audit = [a for a in ledger.list_audit("e2e-hooli") if a.event_id == bad["id"]]
    assert audit and audit[0].outcome == "rejected" and audit[0].reason == "data.profile: is required"

    # Secrets never reach the logs: every secret the stand-ins generated is searched for in every record.
    secrets = [c["client_secret"] for c in local_stack.control("auth0").state()["clients"] if c.get("client_secret")]
    secrets += [local_stack.settings["AUTH0_CLIENT_SECRET"]]
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert [s for s in secrets if s in logged] == []
