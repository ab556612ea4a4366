"""Result events through the outbox: one event per outcome, written with the state change, sent after it, never
lost nor doubled by a crash or a failed send in between; no secret in any of them."""
from __future__ import annotations

import json

import pytest

from shared.domain import results
from shared.domain.errors import PermanentError, RetryBudgetSpent, TransientError, UnknownProfile
from shared.domain.records import APPLIED, DUPLICATE, PROVISIONED, REMOVED
from shared.service_layer.messages import InboundMessage, handle_message
from shared.service_layer.outbox import ResultsPending
from tests.fakes import Crash
from tests.unit.world import VAULT, World, created, removed


def _no_secret_in(world: World) -> None:
    bodies = "\n".join(json.dumps(e) for e in world.results.delivered)
    assert not [s for s in world.identity.issued_secrets if s in bodies]


def test_created_sends_one_provisioned_event_with_the_ids_and_no_secret():
    w = World(results=True)
    w.service().handle(created(plan="gold"))
    rec = w.ledger.record("acme")
    (event,) = w.results.delivered
    assert event["type"] == "customer.provisioned" and event["subject"] == "acme"
    assert event["id"] == results.result_message_id(results.PROVISIONED, "e-created")
    data = event["data"]
    assert data["auth0ClientId"] == rec.auth0_client_id and data["auth0ClientGrantId"] == rec.auth0_client_grant_id
    assert data["keyVaultSecretUri"] == f"{VAULT}secrets/{rec.keyvault_secret_name}"
    assert data["keyVaultSecretVersion"] == rec.keyvault_secret_version
    assert data["apimSubscriptionId"] == rec.apim_subscription_id
    assert data["apimAuthorizationServerId"] == rec.apim_authorization_server_id
    assert (data["profile"], data["plan"], data["sourceEventId"]) == ("oem", "gold", "e-created")
    assert w.ledger.outbox == {}  # sent, then forgotten
    _no_secret_in(w)


def test_a_crash_between_the_commit_and_the_send_is_healed_by_the_redelivery():
    w = World(results=True)
    w.results.fail("publish", Crash("killed after the commit"))  # the worker dies before the send
    with pytest.raises(Crash):
        w.service("w1").handle(created())
    assert w.ledger.record("acme").status == PROVISIONED and len(w.ledger.outbox) == 1
    assert w.results.delivered == []  # nothing invented, nothing sent
    outcome = w.service("w2").handle(created())  # the host redelivers the message
    assert outcome.result == DUPLICATE
    assert [e["type"] for e in w.results.delivered] == ["customer.provisioned"] and w.ledger.outbox == {}


def test_a_failed_send_is_retried_and_a_resend_of_a_lost_answer_is_dropped():
    w = World(results=True)
    w.results.fail("publish", "transient", after=True)  # sent, but the answer was lost
    with pytest.raises(ResultsPending) as err:
        w.service().handle(created())
    assert isinstance(err.value, TransientError) and w.ledger.audit("acme", "e-created").outcome == APPLIED
    w.service().handle(created())  # the retry copy: a duplicate, which sends the pending row again
    assert len(w.results.sent) == 2 and len(w.results.delivered) == 1  # duplicate detection drops the resend
    assert w.ledger.outbox == {}


def test_removed_sends_deprovisioned_and_a_tombstone_says_never_provisioned():
    w = World(results=True)
    svc = w.service()
    svc.handle(created())
    client_id = w.ledger.record("acme").auth0_client_id
    svc.handle(removed())
    svc.handle(removed("ghost", "e-ghost"))
    assert w.ledger.record("acme").status == REMOVED
    gone = w.results.of_type("customer.deprovisioned")
    assert [(e["data"]["customerId"], e["data"]["auth0ClientId"], e["data"]["neverProvisioned"]) for e in gone] == [
        ("acme", client_id, False), ("ghost", None, True)]


def test_a_permanent_failure_sends_one_failed_event_however_often_it_is_delivered():
    w = World(results=True)
    bad = created(profile="reseller")
    for _ in range(3):  # MaxDeliveryCount redeliveries before the dead-letter queue
        with pytest.raises(UnknownProfile):
            w.service().handle(bad)
    (event,) = w.results.delivered
    assert event["type"] == "customer.provisioning-failed"
    assert event["data"]["reasonCode"] == "UnknownProfile" and event["data"]["deadLettered"] is True
    assert "reseller" in event["data"]["rule"] and event["data"]["sourceEventId"] == "e-created"


def test_an_unreadable_event_is_reported_by_its_message_id():
    w = World(results=True)
    message = InboundMessage(body=b'{"specversion": "1.0", "id": "x-1", "type": "customer.created"}',
                             message_id="m-1")
    with pytest.raises(PermanentError):
        handle_message(w.service(), message)
    (event,) = w.results.delivered
    assert event["data"]["reasonCode"] == "InvalidEvent" and event["data"]["sourceMessageId"] == "m-1"
    assert event["data"]["customerId"] is None and event["data"]["rule"].startswith("source:")


def test_drift_findings_are_sent_once_per_run_and_the_sweep_sends_what_was_left():
    w = World(results=True)
    svc = w.service()
    finding = results.drift_detected(customer_id="acme", finding="missing", service="apim",
                                     resource="subscription acme", detail="deleted outside the app",
                                     detection_id="2026-11-26T10:00:00Z", now=w.clock())
    assert svc.emit_results([finding, finding]) == 1  # one row per message id
    assert len(w.results.delivered) == 1 and w.results.delivered[0]["type"] == "customer.drift-detected"
    w.results.fail("publish", "transient")
    with pytest.raises(ResultsPending):
        svc.handle(created())
    assert svc.publish_pending() == 0  # too young: its own attempt (or redelivery) sends it
    w.clock.advance(120)
    assert svc.publish_pending() == 1 and w.ledger.outbox == {}
    assert [e["type"] for e in w.results.delivered][-1] == "customer.provisioned"


def test_a_spent_retry_budget_sends_one_failed_event_with_its_code():
    from shared.domain.retry_policy import RetryPolicy
    from tests.unit.test_messages import RecordingScheduler
    w = World(results=True)
    w.identity.fail("create_application", "transient", times=5)
    body = json.dumps({"specversion": "1.0", "id": "e-1", "source": "/crm", "type": "customer.created",
                       "time": "2026-11-26T10:00:00Z",
                       "data": {"customerId": "acme", "displayName": "Acme", "profile": "oem"}})
    with pytest.raises(RetryBudgetSpent):  # a permanent error: the trigger dead-letters it at once
        handle_message(w.service(), InboundMessage(body=body.encode(), message_id="m-1"),
                       scheduler=RecordingScheduler(), policy=RetryPolicy(max_attempts=0))
    (event,) = w.results.delivered
    assert event["data"]["reasonCode"] == "RetryBudgetSpent" and event["data"]["deadLettered"] is True
    assert w.ledger.audit("acme", "e-1").outcome == "failed"


def test_an_applied_event_is_never_dead_lettered_for_its_result_event():
    from shared.domain.retry_policy import RetryPolicy
    from shared.service_layer.messages import RESULTS_PENDING
    from tests.unit.test_messages import RecordingScheduler
    w = World(results=True)
    w.results.fail("publish", "transient", times=10)  # the topic is down for longer than the retry budget
    body = json.dumps({"specversion": "1.0", "id": "e-1", "source": "/crm", "type": "customer.created",
                       "time": "2026-11-26T10:00:00Z",
                       "data": {"customerId": "acme", "displayName": "Acme", "profile": "oem"}})
    done = handle_message(w.service(), InboundMessage(body=body.encode(), message_id="m-1"),
                          scheduler=RecordingScheduler(), policy=RetryPolicy(max_attempts=0))
    assert done.result == RESULTS_PENDING  # completed, not raised: the message does not go to the dead-letter queue
    assert w.ledger.audit("acme", "e-1").outcome == APPLIED and len(w.ledger.outbox) == 1
    w.clock.advance(120)
    w.results._failures.clear()  # the topic is back: the sweep sends it
    assert w.service().publish_pending() == 1 and len(w.results.delivered) == 1
