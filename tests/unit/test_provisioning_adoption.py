"""``data.existingClientId``: an Auth0 application made by hand is adopted (marked, nothing else changed) instead of
a second one being created; refused clearly when it belongs to another customer or does not fit the profile."""
from __future__ import annotations

import pytest

from shared.domain.errors import PermanentError
from shared.domain.records import APPLIED, DUPLICATE, PROVISIONED
from shared.service_layer.core import MANAGED_BY
from shared.service_layer.ports import ApplicationSpec
from tests.fakes import Crash
from tests.unit.world import World, created, removed


def _hand_made(w: World, *, app_type: str = "non_interactive", metadata: dict | None = None) -> str:
    auth = "none" if app_type == "spa" else "client_secret_post"
    grants = ("authorization_code",) if app_type == "spa" else ("client_credentials",)
    return w.identity.add_application(ApplicationSpec(
        name="Acme (made by hand)", app_type=app_type, grant_types=grants, token_endpoint_auth_method=auth,
        is_first_party=False, token_lifetime=7200, client_metadata=dict(metadata or {"team": "sales"})))


def test_adopts_the_named_application_and_marks_it():
    w = World()
    client_id = _hand_made(w)
    outcome = w.service().handle(created(existing_client_id=client_id))
    assert outcome.result == APPLIED and w.identity.calls["create_application"] == 0
    spec = w.identity.spec_of(client_id)
    assert spec.client_metadata == {"team": "sales", "customer_id": "acme", "profile": "oem", "managed_by": MANAGED_BY}
    assert spec.name == "Acme (made by hand)" and spec.token_lifetime == 7200  # the rest is left as it was
    rec = w.ledger.record("acme")
    assert rec.status == PROVISIONED and rec.auth0_client_id == client_id
    assert w.secrets.value(rec.keyvault_secret_name) == w.identity.secret_of(client_id)
    assert w.gateway.servers[rec.apim_authorization_server_id].client_id == client_id
    assert w.orphans() == []
    assert w.service().handle(created(existing_client_id=client_id)).result == DUPLICATE
    # removed like any application the app made
    w.service().handle(removed())
    assert w.leftovers() == []


def test_refuses_an_application_marked_for_another_customer():
    w = World()
    client_id = _hand_made(w, metadata={"customer_id": "globex"})
    with pytest.raises(PermanentError, match="marked for customer 'globex'"):
        w.service().handle(created(existing_client_id=client_id))
    assert w.identity.spec_of(client_id).client_metadata == {"customer_id": "globex"}
    assert w.identity.calls["set_application_metadata"] == 0 and w.identity.calls["create_application"] == 0
    assert w.secrets.names() == [] and w.gateway.subscriptions == {}


def test_refuses_a_missing_application_and_a_public_one_for_a_confidential_profile():
    w = World()
    with pytest.raises(PermanentError, match="does not exist"):
        w.service().handle(created(existing_client_id="nope123"))
    spa = _hand_made(w, app_type="spa")
    with pytest.raises(PermanentError, match="public client"):
        w.service().handle(created(customer="b", existing_client_id=spa))
    assert w.identity.calls["create_application"] == 0


def test_refuses_another_application_than_the_one_recorded():
    w = World()
    w.service().handle(created())
    other = _hand_made(w)
    with pytest.raises(PermanentError, match="already has application"):
        w.service().handle(created(event_id="e-2", at=1, existing_client_id=other))


def _adoption_calls() -> int:
    w = World()
    client_id = _hand_made(w)
    start = len(w.log.calls)
    w.service().handle(created(existing_client_id=client_id))
    return len(w.log.calls) - start


@pytest.mark.parametrize("index", range(_adoption_calls()))
@pytest.mark.parametrize("when", ["before", "after"])
def test_crash_at_every_call_adopts_once(index, when):
    w = World()
    client_id = _hand_made(w)
    w.log.crash_at(index, when=when)
    with pytest.raises(Crash):
        w.service("w1").handle(created(existing_client_id=client_id))
    w.expire_claims()
    assert w.service("w2").handle(created(existing_client_id=client_id)).result in (APPLIED, DUPLICATE)
    assert list(w.identity.apps) == [client_id] and w.ledger.record("acme").auth0_client_id == client_id
    assert w.orphans() == []
