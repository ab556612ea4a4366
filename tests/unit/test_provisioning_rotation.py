"""``customer.credentials-rotation-requested`` over fakes: one rotation per request, whatever crashes; Key Vault and
API Management end with Auth0's new secret; public clients and customers without a secret are refused."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.domain.errors import RotationRefused, TransientError
from shared.domain.records import APPLIED, DUPLICATE, PROVISIONED, REMOVED, ROTATING
from shared.service_layer.rotation import TAG_ROTATED_AT, TAG_ROTATION_EVENT
from tests.fakes import Crash
from tests.unit.world import World, created, removed, rotation


def _provisioned(profile: str = "oem") -> tuple[World, str, str]:
    w = World()
    w.service("setup").handle(created(profile=profile))
    rec = w.ledger.record("acme")
    return w, rec.auth0_client_id, w.identity.secret_of(rec.auth0_client_id)


def _rotations(w: World, client_id: str) -> int:
    return w.identity.apps[client_id].get("rotations", 0)


def _consistent(w: World, client_id: str) -> None:
    rec = w.ledger.record("acme")
    secret = w.identity.secret_of(client_id)
    latest = w.secrets.latest(rec.keyvault_secret_name)
    assert latest["value"] == secret and latest["version"] == rec.keyvault_secret_version
    assert latest["tags"]["client_id"] == client_id and latest["tags"][TAG_ROTATION_EVENT] == "e-rotate"
    dt.datetime.fromisoformat(latest["tags"][TAG_ROTATED_AT].replace("Z", "+00:00"))
    server = w.gateway.servers.get(rec.apim_authorization_server_id) if rec.apim_authorization_server_id else None
    if server is not None:
        assert server.client_secret == secret and server.client_id == client_id
    assert rec.status == PROVISIONED and rec.claim_owner is None and rec.last_error is None
    assert w.orphans() == []


@pytest.mark.parametrize("profile", ["oem", "partner-web", "m2m-shared"])
def test_rotation_replaces_the_secret_everywhere_and_keeps_the_lifecycle_order(profile):
    w, client_id, old = _provisioned(profile)
    before = w.ledger.record("acme")
    outcome = w.service().handle(rotation())
    assert outcome.result == APPLIED and _rotations(w, client_id) == 1
    assert w.identity.secret_of(client_id) != old
    _consistent(w, client_id)
    rec = w.ledger.record("acme")
    assert (rec.last_event_id, rec.last_event_time) == (before.last_event_id, before.last_event_time)
    assert rec.secret_issued_at == w.clock() and rec.rotation_event_id == "e-rotate"
    assert outcome.facts["clientId"] == client_id and outcome.facts["keyVaultSecretVersion"] == rec.keyvault_secret_version
    assert old not in repr(outcome) and w.identity.secret_of(client_id) not in repr(outcome)
    # the same request again: a duplicate, no second rotation
    assert w.service().handle(rotation()).result == DUPLICATE and _rotations(w, client_id) == 1
    # a removal sent before the rotation (older time) but delivered after it still removes
    assert w.service().handle(removed(at=4)).result == APPLIED
    assert w.ledger.record("acme").status == REMOVED and w.leftovers() == []


def test_public_client_is_refused_permanently_and_nothing_changes():
    w, client_id, _ = _provisioned("partner-spa")
    before = w.snapshot()
    with pytest.raises(RotationRefused, match="public client"):
        w.service().handle(rotation())
    assert w.identity.calls["rotate_secret"] == 0 and w.snapshot()["apps"] == before["apps"]
    assert w.ledger.audit("acme", "e-rotate").outcome == "failed"


def test_customer_without_a_secret_is_refused():
    w = World()
    with pytest.raises(RotationRefused, match="not provisioned"):
        w.service().handle(rotation(customer="ghost"))
    w.service().handle(created())
    w.service().handle(removed())
    with pytest.raises(RotationRefused, match="not provisioned"):
        w.service().handle(rotation(event_id="e-rotate-2", at=20))
    assert w.identity.calls["rotate_secret"] == 0


def test_rotation_waits_for_an_unfinished_creation():
    w = World()
    w.secrets.fail("set_secret", "permanent")
    with pytest.raises(Exception):
        w.service().handle(created())
    with pytest.raises(TransientError, match="creation has not finished"):
        w.service().handle(rotation())


def _baseline_calls() -> int:
    w, _, _ = _provisioned()
    start = len(w.log.calls)
    w.service().handle(rotation())
    return len(w.log.calls) - start


@pytest.mark.parametrize("index", range(_baseline_calls()))
@pytest.mark.parametrize("when", ["before", "after"])
def test_crash_at_every_call_recovers_to_exactly_one_rotation(index, when):
    w, client_id, old = _provisioned()
    w.log.crash_at(index, when=when)
    with pytest.raises(Crash):
        w.service("w1").handle(rotation())
    w.expire_claims()
    assert w.service("w2").handle(rotation()).result in (APPLIED, DUPLICATE)  # after the commit: a duplicate
    assert _rotations(w, client_id) == 1
    _consistent(w, client_id)


def test_crash_between_auth0_and_key_vault_is_recovered_from_auth0_not_rotated_again():
    w, client_id, old = _provisioned()
    w.secrets.fail("set_secret", Crash)
    with pytest.raises(Crash):
        w.service("w1").handle(rotation())
    assert _rotations(w, client_id) == 1 and w.ledger.record("acme").status == ROTATING
    assert w.secrets.value(w.ledger.record("acme").keyvault_secret_name) == old  # Key Vault is behind
    w.expire_claims()
    w.service("w2").handle(rotation())
    assert _rotations(w, client_id) == 1
    _consistent(w, client_id)


def test_a_failure_before_auth0_rotates_on_the_next_delivery():
    w, client_id, old = _provisioned()
    w.identity.fail("rotate_secret", "transient")
    with pytest.raises(TransientError):
        w.service().handle(rotation())
    assert _rotations(w, client_id) == 0
    w.service().handle(rotation())
    assert _rotations(w, client_id) == 1
    _consistent(w, client_id)


def test_a_second_request_rotates_again():
    w, client_id, _ = _provisioned()
    w.service().handle(rotation())
    first = w.identity.secret_of(client_id)
    w.service().handle(rotation(event_id="e-rotate-2", at=6))
    assert _rotations(w, client_id) == 2 and w.identity.secret_of(client_id) != first
    rec = w.ledger.record("acme")
    assert w.secrets.value(rec.keyvault_secret_name) == w.identity.secret_of(client_id)


def test_a_missing_authorization_server_entry_is_written_whole():
    w, client_id, _ = _provisioned()
    server_id = w.ledger.record("acme").apim_authorization_server_id
    del w.gateway.servers[server_id]
    w.service().handle(rotation())
    _consistent(w, client_id)
    assert w.gateway.servers[server_id].display_name == "Acme Corp"


def test_an_applied_rotation_tells_the_crm_where_the_new_secret_is_and_never_the_secret():
    w = World(results=True)
    w.service("setup").handle(created())
    client_id = w.ledger.record("acme").auth0_client_id
    w.service().handle(rotation())
    w.service().handle(rotation())  # a redelivery: no second event
    rotated = [e for e in w.results.delivered if e["type"] == "customer.credentials-rotated"]
    assert len(rotated) == 1
    [event] = rotated
    rec = w.ledger.record("acme")
    assert event["data"]["auth0ClientId"] == client_id
    assert event["data"]["keyVaultSecretVersion"] == rec.keyvault_secret_version
    assert event["data"]["sourceEventId"] == "e-rotate"
    assert w.identity.secret_of(client_id) not in str(w.results.delivered)
