"""customer.created: what gets created, with which settings, and that handling it again changes nothing."""
from __future__ import annotations

from dataclasses import replace

import pytest

from shared.domain import naming
from shared.domain.errors import InvalidEvent, PermanentError, UnknownProfile
from shared.domain.records import APPLIED, DUPLICATE, PROVISIONED, PROVISIONING, REJECTED
from shared.service_layer.ports import ApplicationSpec
from shared.service_layer.provisioning import MANAGED_BY, SECRET_CONTENT_TYPE
from tests.unit.world import API, DOMAIN, World, created, removed, updated

EXTERNAL_CREATES = ("auth0.create_application", "auth0.create_client_grant")


def test_oem_customer_gets_every_resource():
    w = World()
    outcome = w.service().handle(created(plan="gold"), message_id="m1")

    assert (outcome.result, outcome.status) == (APPLIED, PROVISIONED)
    [client_id] = w.identity.apps_of("acme")
    spec = w.identity.spec_of(client_id)
    assert spec.name == "Acme Corp"
    assert spec.is_first_party is False and client_id.startswith("tpc_")
    assert spec.app_type == "non_interactive" and spec.grant_types == ("client_credentials",)
    assert spec.token_endpoint_auth_method == "client_secret_post" and spec.token_lifetime == 3600
    assert spec.client_metadata == {"customer_id": "acme", "profile": "oem", "managed_by": MANAGED_BY,
                                    "plan": "gold"}
    assert spec.callbacks == ()
    [grant] = w.identity.grants_of(client_id)
    assert (grant["audience"], grant["scopes"]) == (API, ("read:data", "write:data"))

    name = naming.secret_name("acme")
    latest = w.secrets.latest(name)
    assert latest["value"] == w.identity.secret_of(client_id)
    assert latest["content_type"] == SECRET_CONTENT_TYPE
    assert latest["tags"] == {"customer_id": "acme", "client_id": client_id, "profile": "oem"}

    server = w.gateway.servers[naming.authorization_server_id("acme")]
    assert server.client_id == client_id and server.client_secret == w.identity.secret_of(client_id)
    assert server.authorization_endpoint == f"https://{DOMAIN}/authorize"
    assert server.token_endpoint == f"https://{DOMAIN}/oauth/token"
    assert server.client_registration_endpoint == f"https://{DOMAIN}/"
    assert server.grant_types == ("clientCredentials",) and server.default_scope == "read:data write:data"
    # Displayed as the client id: the gateway policy's binding of the subscription's keys to that client's tokens.
    assert w.gateway.subscriptions[naming.subscription_id("acme")] == {
        "display_name": client_id, "product_id": "oem", "state": "active"}

    rec = w.ledger.record("acme")
    assert rec.status == PROVISIONED and rec.profile == "oem" and rec.display_name == "Acme Corp"
    assert rec.auth0_client_id == client_id and rec.auth0_client_grant_id == grant["id"]
    assert rec.keyvault_secret_name == name and rec.keyvault_secret_version == latest["version"]
    assert rec.apim_authorization_server_id == "auth0-acme" and rec.apim_subscription_id == "customer-acme"
    assert rec.last_event_id == "e-created" and rec.last_event_type == "customer.created"
    assert rec.auth0_create_intent is None and rec.pending_event_id is None and rec.last_error is None
    assert rec.claim_owner is None and rec.claim_expires is None
    audit = w.ledger.audit("acme", "e-created")
    assert (audit.outcome, audit.attempts, audit.message_id) == (APPLIED, 1, "m1")
    assert w.orphans() == []


def test_partner_web_uses_redirect_uris_as_callbacks():
    w = World()
    uris = ["https://app.partner.example/callback", "https://app.partner.example:8443/cb"]
    w.service().handle(created(profile="partner-web", redirect_uris=uris))

    [client_id] = w.identity.apps_of("acme")
    spec = w.identity.spec_of(client_id)
    assert spec.callbacks == tuple(uris)
    assert spec.app_type == "regular_web" and spec.grant_types == ("authorization_code", "refresh_token")
    assert w.gateway.servers["auth0-acme"].grant_types == ("authorizationCode",)
    assert w.gateway.subscriptions["customer-acme"]["product_id"] == "partners"
    assert w.secrets.value("auth0-client-acme") == w.identity.secret_of(client_id)
    assert w.orphans() == []


def test_partner_spa_is_public_no_secret_stored_anywhere():
    w = World()
    w.service().handle(created(profile="partner-spa", redirect_uris=["https://spa.partner.example/"]))

    [client_id] = w.identity.apps_of("acme")
    assert w.identity.spec_of(client_id).token_endpoint_auth_method == "none"
    assert w.secrets.calls["set_secret"] == 0 and w.secrets.names() == []
    server = w.gateway.servers["auth0-acme"]
    assert server.client_id == client_id and server.client_secret is None
    rec = w.ledger.record("acme")
    assert rec.keyvault_secret_name is None and rec.keyvault_secret_version is None
    # The SPA does not need its secret: it is not even read.
    assert w.identity.secret_of(client_id) not in repr(w.snapshot())
    assert w.orphans() == []


def test_redirect_uris_are_ignored_when_the_profile_does_not_use_them():
    w = World()
    w.service().handle(created(profile="oem", redirect_uris=["https://x.example/cb"]))
    [client_id] = w.identity.apps_of("acme")
    assert w.identity.spec_of(client_id).callbacks == ()


def test_profile_without_apim_entry_skips_entry_and_capacity_check():
    w = World(limit=1, other_servers=1)  # full: would fail if it were checked
    outcome = w.service().handle(created(profile="m2m-shared"))

    assert outcome.result == APPLIED
    assert w.gateway.calls["get_authorization_server_capacity"] == 0
    assert w.gateway.calls["set_authorization_server"] == 0 and w.gateway.customer_servers() == {}
    assert w.ledger.record("acme").apim_authorization_server_id is None
    assert "customer-acme" in w.gateway.subscriptions
    assert w.orphans() == []


def test_application_name_prefix_and_registration_endpoint_options():
    w = World()
    svc = w.service(application_name_prefix="Contoso - ", apim_client_registration_endpoint="https://reg.example/")
    svc.handle(created())
    [client_id] = w.identity.apps_of("acme")
    assert w.identity.spec_of(client_id).name == "Contoso - Acme Corp"
    assert w.gateway.servers["auth0-acme"].client_registration_endpoint == "https://reg.example/"


def test_long_display_name_is_clipped_to_apim_limits():
    w = World()
    name = "A" * 60 + " " + "B" * 39
    w.service().handle(created(display_name=name))
    assert w.gateway.servers["auth0-acme"].display_name == "A" * 50
    # The subscription is displayed as the client id whatever the customer's name (the gateway's binding).
    [client_id] = w.identity.apps_of("acme")
    assert w.gateway.subscriptions["customer-acme"]["display_name"] == client_id


@pytest.mark.parametrize("profile", ["oem", "partner-web", "partner-spa", "m2m-shared"])
def test_same_event_twice_is_a_duplicate_and_calls_nothing_external(profile):
    w = World()
    svc = w.service()
    ev = created(profile=profile)
    svc.handle(ev, message_id="m1")
    before = w.snapshot()
    calls = len(w.log.calls)

    outcome = svc.handle(ev, message_id="m2")

    assert (outcome.result, outcome.status) == (DUPLICATE, PROVISIONED)
    assert w.snapshot() == before
    assert w.log.calls[calls:] == ["ledger.get_customer", "ledger.set_audit"]
    audit = w.ledger.audit("acme", "e-created")
    assert (audit.outcome, audit.attempts, audit.message_id) == (APPLIED, 2, "m2")


@pytest.mark.parametrize("profile", ["oem", "partner-web", "partner-spa", "m2m-shared"])
def test_new_event_id_with_same_content_reapplies_without_creating(profile):
    w = World()
    w.service().handle(created(profile=profile))
    first = w.snapshot()
    creates = {name: w.log.count(name) for name in EXTERNAL_CREATES}

    outcome = w.service("w2").handle(created(profile=profile, event_id="e-again", at=1))

    assert outcome.result == APPLIED
    assert {name: w.log.count(name) for name in EXTERNAL_CREATES} == creates
    assert w.identity.calls["find_applications"] == 0
    again = w.snapshot()
    assert again["apps"] == first["apps"] and again["grants"] == first["grants"]
    assert again["secrets"] == first["secrets"] and again["servers"] == first["servers"]
    assert again["subscriptions"] == first["subscriptions"]
    assert again["ledger"]["acme"]["last_event_id"] == "e-again"
    assert w.orphans() == []


def test_reapply_repairs_drift():
    w = World()
    w.service().handle(created())
    [client_id] = w.identity.apps_of("acme")
    # Someone deletes things by hand.
    w.identity.grants.clear()
    w.secrets.active.clear()
    w.gateway.servers.clear()
    w.gateway.subscriptions.clear()

    w.service().handle(created(event_id="e-again", at=1))

    assert w.identity.apps_of("acme") == [client_id]
    assert w.orphans() == []


def test_recorded_application_deleted_behind_our_back_is_recreated():
    w = World()
    w.service().handle(created())
    [old] = w.identity.apps_of("acme")
    del w.identity.apps[old]
    w.identity.grants.clear()

    w.service().handle(created(event_id="e-again", at=1))

    [new] = w.identity.apps_of("acme")
    assert new != old
    assert w.secrets.value("auth0-client-acme") == w.identity.secret_of(new)
    assert w.gateway.servers["auth0-acme"].client_id == new
    assert w.orphans() == []


def test_second_create_with_another_profile_is_refused_and_changes_nothing():
    w = World()
    w.service().handle(created(profile="oem"))
    before = w.snapshot()

    with pytest.raises(PermanentError, match="send customer.removed first"):
        w.service().handle(created(profile="partner-web", event_id="e2", at=1))

    after = w.snapshot()
    assert after["audit"].pop(("acme", "e2")) == "failed"
    assert after == before


def test_unknown_profile_is_rejected_then_applied_once_configured():
    w = World()
    profiles = dict(w.profiles)
    del w.profiles["oem"]
    with pytest.raises(UnknownProfile) as err:
        w.service().handle(created(profile="oem"))
    assert "data.profile" in str(err.value) and "oem" in str(err.value)
    assert w.ledger.audit("acme", "e-created").outcome == REJECTED
    assert w.ledger.record("acme") is None and w.leftovers() == []

    # A redelivery while the configuration is unchanged is rejected again: the message must keep failing so that
    # it reaches the dead-letter queue (completing it as a duplicate would drop it with nobody told).
    with pytest.raises(UnknownProfile):
        w.service().handle(created(profile="oem"))
    audit = w.ledger.audit("acme", "e-created")
    assert (audit.outcome, audit.attempts) == (REJECTED, 2)
    assert w.ledger.record("acme") is None and w.leftovers() == []

    # The profile is deployed; the operator resubmits the dead-lettered message (same event id).
    w.profiles.update(profiles)
    assert w.service().handle(created(profile="oem")).result == APPLIED
    assert w.orphans() == []


def test_required_redirect_uris_missing_is_rejected_naming_the_field():
    w = World()
    with pytest.raises(InvalidEvent) as err:
        w.service().handle(created(profile="web-required"))
    assert err.value.field == "data.redirectUris" and "web-required" in str(err.value)
    assert w.ledger.audit("acme", "e-created").outcome == REJECTED
    assert w.leftovers() == [] and w.identity.calls["create_application"] == 0

    ok = w.service().handle(created(profile="web-required", event_id="e2", redirect_uris=["https://w.example/cb"]))
    assert ok.result == APPLIED


def test_capacity_full_fails_permanently_before_anything_is_created():
    w = World(limit=10, other_servers=10)
    with pytest.raises(PermanentError) as err:
        w.service().handle(created())

    message = str(err.value)
    assert "Developer" in message and "10 authorization servers" in message and "10 are in use" in message
    assert "apim_authorization_server" in message and "oem" in message
    assert w.identity.apps == {} and w.leftovers() == []
    assert w.identity.calls["create_application"] == 0 and w.gateway.calls["set_subscription"] == 0
    rec = w.ledger.record("acme")
    assert rec.status == PROVISIONING and "authorization servers" in rec.last_error and rec.claim_owner is None
    assert w.ledger.audit("acme", "e-created").outcome == "failed"

    # The customer is moved to a profile without an entry: that works, and finds nothing to adopt.
    outcome = w.service().handle(created(profile="m2m-shared", event_id="e2", at=1))
    assert outcome.result == APPLIED and len(w.identity.apps) == 1 and w.orphans() == []


def test_capacity_full_but_our_own_entry_exists_is_not_a_failure():
    w = World(limit=2, other_servers=1)
    w.service().handle(created())  # takes the last slot
    rec = w.ledger.customers["acme"]
    w.ledger.customers["acme"] = rec.copy(apim_authorization_server_id=None)  # as if the ledger missed it

    outcome = w.service().handle(created(event_id="e2", at=1))

    assert outcome.result == APPLIED
    # The ledger's reservation says the slot is acme's: no listing, no lookup of the entry.
    assert w.gateway.calls["has_authorization_server"] == 0
    assert w.gateway.calls["get_authorization_server_capacity"] == 1  # the seed, once
    assert w.orphans() == []


def test_capacity_is_not_checked_when_the_entry_is_recorded():
    w = World()
    w.service().handle(created())
    w.service().handle(created(event_id="e2", at=1))
    assert w.gateway.calls["get_authorization_server_capacity"] == 1


def test_adopts_the_application_of_an_interrupted_attempt_and_deletes_extra_copies(caplog):
    w = World()
    svc = w.service()
    # An earlier attempt recorded its intent, then the answer of its create was lost ...
    w.identity.fail("create_application", "transient", after=True)
    with pytest.raises(Exception):
        svc.handle(created())
    [first] = w.identity.apps_of("acme")
    # ... and a second copy exists (say a search that missed the first one, then another lost answer).
    second = w.identity.add_application(w.identity.spec_of(first))
    foreign = w.identity.add_application(ApplicationSpec(
        name="hand made", app_type="non_interactive", grant_types=("client_credentials",),
        token_endpoint_auth_method="client_secret_post", is_first_party=False, token_lifetime=60,
        client_metadata={"customer_id": "acme"}))
    w.identity.create_client_grant(second, API, ("read:data",))  # the copy even got a grant

    with caplog.at_level("INFO", logger="customer_provisioning"):
        outcome = svc.handle(created())

    assert outcome.result == APPLIED
    assert set(w.identity.apps_of("acme")) == {first, foreign}  # the oldest kept, not ours left alone
    assert w.identity.grants_of(second) == []
    assert w.ledger.record("acme").auth0_client_id == first
    assert w.identity.calls["create_application"] == 1
    loud = [r for r in caplog.records if r.levelname == "ERROR" and second in r.getMessage()]
    assert loud, "deleting a duplicate must be logged as an error"
    del w.identity.apps[foreign]
    assert w.orphans() == []


def test_adopting_an_application_of_another_profile_is_refused():
    w = World()
    w.identity.fail("create_application", "transient", after=True)
    with pytest.raises(Exception):
        w.service().handle(created(profile="oem"))
    with pytest.raises(PermanentError, match="profile 'oem'"):
        w.service().handle(created(profile="m2m-shared", event_id="e2", at=1))
    assert len(w.identity.apps) == 1


def test_grant_conflict_is_resolved_by_lookup():
    w = World()
    w.identity.fail("create_client_grant", "transient", after=True)  # applied, answer lost
    with pytest.raises(Exception):
        w.service().handle(created())
    w.service().handle(created())
    [client_id] = w.identity.apps_of("acme")
    assert len(w.identity.grants_of(client_id)) == 1
    assert w.orphans() == []


def test_grant_create_answering_409_is_followed_by_a_lookup():
    w = World()
    real = w.identity.create_client_grant

    def conflicting(client_id, audience, scopes):
        real(client_id, audience, scopes)  # someone else created it between our calls
        return real(client_id, audience, scopes)  # 409 -> None

    w.identity.create_client_grant = conflicting
    w.service().handle(created())
    [client_id] = w.identity.apps_of("acme")
    [grant] = w.identity.grants_of(client_id)
    assert w.ledger.record("acme").auth0_client_grant_id == grant["id"]
    assert w.identity.calls["get_client_grant"] == 1


def test_two_customers_racing_for_the_last_authorization_server_slot():
    """Regression (issue 18, case 2): with 9 of 10 entries used, two customers created at once both saw 9, and
    the second ended half-provisioned (application, grant, secret, an active subscription, no entry). The slot is
    now reserved in the ledger before anything is created: the second is refused with nothing made."""
    w = World(limit=10, other_servers=9)
    first, second = w.service("w1"), w.service("w2")
    held = [w.ledger.reserve_slot("apim-authorization-servers", "acme", 10, seed=lambda: 9)]
    assert held == [True]  # acme's worker reserved, and is now paused before its creates
    with pytest.raises(PermanentError, match="all 10 are in use or reserved"):
        second.handle(created(customer="beta", event_id="e-beta"))
    assert w.identity.apps == {} and w.gateway.subscriptions == {} and w.secrets.names() == []
    assert first.handle(created()).result == APPLIED
    assert len(w.gateway.customer_servers()) == 1 and w.orphans() == []


def test_removal_gives_the_slot_back_and_a_permanent_failure_before_the_entry_does_too():
    w = World(limit=10, other_servers=9)
    w.service().handle(created())
    assert w.ledger.pools["apim-authorization-servers"]["used"] == 10
    w.service().handle(removed())
    assert w.ledger.pools["apim-authorization-servers"]["used"] == 9
    w.identity.fail("create_application", "permanent")
    with pytest.raises(PermanentError):
        w.service().handle(created(customer="beta", event_id="e-beta"))
    assert w.ledger.pools["apim-authorization-servers"] == {"used": 9, "holders": set()}
    assert w.service().handle(created(customer="gamma", event_id="e-gamma")).result == APPLIED


# ---- issue 23, case 8: callbacks on the user's own machine or network, per profile --------------------------------
@pytest.mark.parametrize("uri", ["https://localhost/cb", "https://127.0.0.1/cb", "https://10.0.0.7:8443/cb",
                                 "https://printer.local/cb", "https://[::1]/cb"])
def test_case08_a_third_party_profile_refuses_local_callbacks_before_anything_is_made(uri):
    w = World()
    svc = w.service()
    with pytest.raises(InvalidEvent) as err:
        svc.handle(created(profile="partner-web", redirect_uris=["https://ok.example/cb", uri]))
    assert err.value.field == "data.redirectUris[1]" and "allow_local_redirect_uris" in err.value.rule
    assert w.leftovers() == [] and w.ledger.audit("acme", "e-created").outcome == REJECTED
    svc.handle(created(profile="partner-web", redirect_uris=["https://ok.example/cb"]))
    with pytest.raises(InvalidEvent):
        svc.handle(updated(redirectUris=[uri]))
    assert w.identity.spec_of(w.ledger.record("acme").auth0_client_id).callbacks == ("https://ok.example/cb",)


def test_case08_a_profile_may_allow_local_callbacks_explicitly():
    w = World()
    w.profiles["partner-web"] = replace(w.profiles["partner-web"], allow_local_redirect_uris=True)
    w.service().handle(created(profile="partner-web", redirect_uris=["https://localhost:3000/cb"]))
    assert w.identity.spec_of(w.ledger.record("acme").auth0_client_id).callbacks == ("https://localhost:3000/cb",)
