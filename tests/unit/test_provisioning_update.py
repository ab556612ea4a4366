"""customer.updated: applied in place to the application, its grant and the API Management entries, under the same
ordering and idempotency rules as the other events; a change that cannot be made in place is refused whole."""
from __future__ import annotations

import pytest

from shared.domain.errors import ChangeNotInPlace, InvalidEvent, NotProvisioned, TransientError
from shared.domain.events import parse_event
from shared.domain.records import APPLIED, DUPLICATE, PROVISIONED, STALE
from tests.unit.world import World, created, removed, updated

CALLBACK = "https://portal.acme.example/callback"


def _provisioned_web(w: World):
    svc = w.service()
    svc.handle(created(profile="partner-web", redirect_uris=["https://old.acme.example/cb"]))
    return svc, w.ledger.record("acme")


def test_callbacks_plan_and_name_change_in_place():
    w = World(results=True)
    svc, before = _provisioned_web(w)
    outcome = svc.handle(updated(displayName="Acme Group", plan="premium", redirectUris=[CALLBACK]))
    assert outcome.result == APPLIED
    rec = w.ledger.record("acme")
    assert (rec.status, rec.plan, rec.display_name) == (PROVISIONED, "premium", "Acme Group")
    assert rec.auth0_client_id == before.auth0_client_id and w.identity.apps_of("acme") == [rec.auth0_client_id]
    spec = w.identity.spec_of(rec.auth0_client_id)
    assert (spec.name, spec.callbacks, spec.client_metadata["plan"]) == ("Acme Group", (CALLBACK,), "premium")
    (grant,) = w.identity.grants_of(rec.auth0_client_id)
    assert grant["scopes"] == ("read:data", "write:data")  # the premium plan's scopes
    server = w.gateway.servers[rec.apim_authorization_server_id]
    assert server.default_scope == "read:data write:data" and server.client_secret  # the secret stays
    # A new name changes the application and the entry; the subscription stays displayed as the client id.
    assert w.gateway.subscriptions[rec.apim_subscription_id]["display_name"] == rec.auth0_client_id
    (event,) = w.results.of_type("customer.updated")
    assert event["data"]["changed"] == ["displayName", "plan", "redirectUris"]
    assert event["data"]["scopes"] == ["read:data", "write:data"]
    # A redelivery changes nothing more.
    calls = sum(w.identity.calls.values())
    assert svc.handle(updated(displayName="Acme Group", plan="premium", redirectUris=[CALLBACK])).result == DUPLICATE
    assert sum(w.identity.calls.values()) == calls and len(w.results.of_type("customer.updated")) == 1


def test_a_profile_change_of_the_same_kind_moves_product_grant_types_and_scopes():
    w = World()
    svc = w.service()
    svc.handle(created(profile="oem"))
    svc.handle(updated(profile="partner-web", redirectUris=[CALLBACK]))
    rec = w.ledger.record("acme")
    spec = w.identity.spec_of(rec.auth0_client_id)
    assert (rec.profile, spec.app_type, spec.grant_types) == (
        "partner-web", "regular_web", ("authorization_code", "refresh_token"))
    assert w.gateway.subscriptions[rec.apim_subscription_id]["product_id"] == "partners"
    assert w.gateway.servers[rec.apim_authorization_server_id].grant_types == ("authorizationCode",)
    assert w.identity.grants_of(rec.auth0_client_id)[0]["scopes"] == ("read:data",)


def test_confidential_to_public_is_refused_whole_with_the_reason():
    w = World(results=True)
    svc, _ = _provisioned_web(w)
    before = w.snapshot()
    with pytest.raises(ChangeNotInPlace) as err:
        svc.handle(updated(profile="partner-spa"))
    assert "confidential" in err.value.reason and "customer.removed" in err.value.reason
    assert w.identity.calls["update_application"] == 0 and w.gateway.calls["update_subscription"] == 0
    after = w.snapshot()
    assert after["apps"] == before["apps"] and after["grants"] == before["grants"]
    assert after["ledger"]["acme"]["status"] == PROVISIONED and after["ledger"]["acme"]["profile"] == "partner-web"
    (failed,) = w.results.of_type("customer.provisioning-failed")
    assert failed["data"]["reasonCode"] == "ChangeNotInPlace"


def test_ordering_an_older_update_is_stale_and_a_late_older_create_too():
    w = World()
    svc = w.service()
    svc.handle(created(at=0))
    svc.handle(updated(event_id="u2", at=20, displayName="Newer"))
    assert svc.handle(updated(event_id="u1", at=10, displayName="Older")).result == STALE
    assert svc.handle(created(event_id="c-late", at=15, display_name="Late")).result == STALE
    assert w.identity.spec_of(w.ledger.record("acme").auth0_client_id).name == "Newer"


def test_an_update_before_the_create_is_retried_and_after_a_removal_refused():
    w = World()
    svc = w.service()
    with pytest.raises(TransientError):
        svc.handle(updated(at=5, displayName="Early"))
    svc.handle(created(at=0))
    assert svc.handle(updated(at=5, displayName="Early")).result == APPLIED  # the retry, after the create
    svc.handle(removed(at=10))
    with pytest.raises(NotProvisioned):
        svc.handle(updated(event_id="u-late", at=20, displayName="Gone"))
    assert w.identity.apps_of("acme") == []


def test_an_update_must_change_something():
    with pytest.raises(InvalidEvent) as err:
        parse_event('{"specversion":"1.0","id":"u","source":"/crm","type":"customer.updated",'
                    '"time":"2026-11-26T10:00:00Z","data":{"customerId":"acme"}}')
    assert err.value.field == "data"
