"""End to end, through the queue and the local host: the CRM's view. Events sent with the Service Bus SDK, the
result events read from the topic's subscription as the CRM would (``devtools.listen``): one per outcome, with the
ids the services hold; a crash between the ledger commit and the publish still gives exactly one."""
from __future__ import annotations

import pytest

from devtools.listen import receive_results
from devtools.send import build_event, send_events
from devtools.waiting import wait_until
from emulators.inspect import view_stack
from tests.conftest import customer_status

pytestmark = pytest.mark.timeout(180)
CALLBACK = "https://portal.globex.example/callback"


@pytest.fixture
def topic(stack_env):
    """The subscription, emptied of what earlier tests left; ``collect(customer, n)`` waits for ``n`` events of
    the customer, then listens a moment longer so that an extra one (a duplicate) would be seen too."""
    list(receive_results(stack_env, max_wait=1))
    got: list[dict] = []

    def collect(customer: str, n: int, timeout: float = 45) -> list[dict]:
        def enough():
            got.extend(receive_results(stack_env, max_wait=1))
            return len([e for e in got if e["data"]["customerId"] == customer]) >= n
        wait_until(enough, timeout=timeout, what=f"{n} result event(s) of {customer}")
        got.extend(receive_results(stack_env, max_wait=2))
        return [e for e in got if e["data"]["customerId"] == customer]

    return collect


def _auth0_client(local_stack, client_id: str) -> dict:
    state = local_stack.control("auth0").state()
    client = next(c for c in state["clients"] if c["client_id"] == client_id)
    grants = [g for g in state["client_grants"] if g["client_id"] == client_id]
    return {**client, "grants": grants}


def test_provisioned_then_updated_each_once_with_the_services_ids(app_host, ledger, stack_env, local_stack, topic):
    send_events([build_event("created", "e2e-globex", profile="partner-web",
                             redirect_uris=["https://old.globex.example/cb"])], stack_env)
    wait_until(lambda: customer_status(ledger, "e2e-globex") == "provisioned", timeout=30, what="provisioned")
    (provisioned,) = topic("e2e-globex", 1)
    rec = ledger.get_customer("e2e-globex")[0]
    held = view_stack(local_stack).of("e2e-globex")
    data = provisioned["data"]
    assert provisioned["type"] == "customer.provisioned" and provisioned["specversion"] == "1.0"
    assert data["auth0ClientId"] == rec.auth0_client_id == held.auth0_applications[0]
    assert data["keyVaultSecretUri"].endswith(f"/secrets/{held.secrets[0]}")
    assert data["keyVaultSecretVersion"] == rec.keyvault_secret_version
    assert data["apimSubscriptionId"] == rec.apim_subscription_id and data["apimAuthorizationServerId"]
    assert "client_secret" not in str(provisioned) and _auth0_client(local_stack, rec.auth0_client_id)[
        "client_secret"] not in str(provisioned)

    update = build_event("updated", "e2e-globex", profile=None, plan="premium", redirect_uris=[CALLBACK])
    send_events([update], stack_env)
    events = topic("e2e-globex", 2)
    assert [e["type"] for e in events] == ["customer.provisioned", "customer.updated"]
    client = _auth0_client(local_stack, rec.auth0_client_id)
    assert client["callbacks"] == [CALLBACK] and client["client_metadata"]["plan"] == "premium"
    assert [sorted(g["scope"]) for g in client["grants"]] == [["read:data", "write:data"]]
    assert events[1]["data"]["sourceEventId"] == update["id"] and events[1]["data"]["changed"] == [
        "plan", "redirectUris"]
    assert len(view_stack(local_stack).of("e2e-globex").auth0_applications) == 1


def test_a_crash_between_commit_and_publish_yields_exactly_one_event(ledger, stack_env, topic, monkeypatch):
    """The app's handler in this process with its real clients, not under the host: the host's worker process
    cannot be patched, and this property is the service layer's (that the host delivers a failed invocation's
    message again is tested in tests/funchost)."""
    import datetime as dt
    import json

    from shared.bootstrap import get_handler, reset
    from shared.service_layer.messages import InboundMessage

    reset()
    try:
        handler = get_handler()
        publisher = handler.service.results
        real, died = publisher.publish, []

        def dies_once(entries):
            if not died:
                died.append(entries[0].message_id)
                # Not a service's answer: the invocation fails as a killed worker's would, after the commit.
                raise RuntimeError("the worker died between the ledger commit and the publish")
            return real(entries)

        monkeypatch.setattr(publisher, "publish", dies_once)
        event = build_event("created", "e2e-crash", profile="oem")
        message = InboundMessage(body=json.dumps(event).encode(), message_id=event["id"], delivery_count=1,
                                 session_id="e2e-crash", enqueued_time=dt.datetime.now(dt.timezone.utc),
                                 content_type="application/cloudevents+json")
        with pytest.raises(RuntimeError, match="died between"):
            handler(message)
        handler(InboundMessage(**{**message.__dict__, "delivery_count": 2}))  # the host's redelivery
        events = topic("e2e-crash", 1)
    finally:
        reset()
    assert died and [e["id"] for e in events] == died  # sent once, by the redelivery
    assert [a.outcome for a in ledger.list_audit("e2e-crash")] == ["applied"]
    assert ledger.get_customer("e2e-crash")[0].status == "provisioned"


def test_an_invalid_event_yields_one_provisioning_failed(app_host, stack_env, topic):
    bad = build_event("invalid", "e2e-hooli")
    send_events([bad], stack_env)
    (failed,) = topic("e2e-hooli", 1, timeout=60)  # five deliveries before the dead-letter queue: one event
    assert failed["type"] == "customer.provisioning-failed"
    assert failed["data"]["sourceEventId"] == bad["id"] and failed["data"]["reasonCode"] == "InvalidEvent"
    assert failed["data"]["rule"] == "data.profile: is required" and failed["data"]["deadLettered"] is True
