"""customer.removed: everything goes, whatever the ledger remembers, and "already gone" is success."""
from __future__ import annotations

import pytest

from shared.domain.records import APPLIED, DUPLICATE, REMOVED
from tests.unit.world import World, created, removed


@pytest.mark.parametrize("profile", ["oem", "partner-web", "partner-spa", "m2m-shared"])
def test_removal_deletes_everything_and_clears_the_ids(profile):
    w = World()
    w.service().handle(created(profile=profile))

    outcome = w.service().handle(removed(), message_id="m9")

    assert (outcome.result, outcome.status) == (APPLIED, REMOVED)
    assert w.leftovers() == []
    rec = w.ledger.record("acme")
    assert rec.status == REMOVED
    assert (rec.auth0_client_id, rec.auth0_client_grant_id, rec.keyvault_secret_name, rec.keyvault_secret_version,
            rec.apim_authorization_server_id, rec.apim_subscription_id, rec.auth0_create_intent) == (None,) * 7
    assert (rec.last_event_id, rec.last_event_type) == ("e-removed", "customer.removed")
    assert rec.claim_owner is None and rec.pending_event_id is None and rec.last_error is None
    assert w.ledger.audit("acme", "e-removed").outcome == APPLIED
    assert w.orphans() == []


def test_removal_soft_deletes_the_secret_by_default_and_purges_when_configured():
    w = World()
    w.service().handle(created())
    w.service().handle(removed())
    assert w.secrets.deleted_names() == ["auth0-client-acme"] and w.secrets.calls["purge_deleted_secret"] == 0

    w = World(purge=True)
    w.service().handle(created())
    w.service().handle(removed())
    assert w.secrets.deleted_names() == [] and w.secrets.names() == []


def test_removal_waits_for_key_vault_to_finish_the_soft_delete_only_to_purge():
    w = World()
    w.service().handle(created())
    w.service().handle(removed())
    assert w.secrets.delete_waits == [False]  # Key Vault finishes in the background; nothing here needs it done

    w = World(purge=True)
    w.service().handle(created())
    w.service().handle(removed())
    assert w.secrets.delete_waits == [True]  # a purge of a secret still being deleted would be refused (409)


def test_purge_refused_by_purge_protection_does_not_fail_the_removal():
    w = World(purge=True, purge_protection=True)
    w.service().handle(created())
    outcome = w.service().handle(removed())
    assert outcome.result == APPLIED
    assert w.secrets.deleted_names() == ["auth0-client-acme"] and w.leftovers() == []


def test_removal_of_a_never_provisioned_customer_writes_a_tombstone():
    w = World()
    outcome = w.service().handle(removed())

    assert (outcome.result, outcome.status) == (APPLIED, REMOVED)
    rec = w.ledger.record("acme")
    assert rec.status == REMOVED and rec.last_event_id == "e-removed"
    assert rec.last_event_time == removed().time
    assert w.ledger.audit("acme", "e-removed").outcome == APPLIED
    # Nothing to delete anywhere: not even a call.
    assert [c for c in w.log.calls if not c.startswith("ledger.")] == []
    assert w.service().handle(removed()).result == DUPLICATE


def test_removal_tolerates_everything_already_gone():
    w = World()
    w.service().handle(created())
    w.identity.apps.clear()
    w.identity.grants.clear()
    w.secrets.active.clear()
    w.gateway.servers.clear()
    w.gateway.subscriptions.clear()

    outcome = w.service().handle(removed())

    assert outcome.result == APPLIED and w.ledger.record("acme").status == REMOVED


def test_removal_deletes_by_derived_names_when_the_ledger_lacks_them():
    w = World()
    w.service().handle(created())
    rec = w.ledger.customers["acme"]
    w.ledger.customers["acme"] = rec.copy(keyvault_secret_name=None, apim_authorization_server_id=None,
                                          apim_subscription_id=None, auth0_client_grant_id=None)

    w.service().handle(removed())

    assert w.leftovers() == []


def test_removal_finds_the_application_through_the_intent():
    w = World()
    w.identity.fail("create_application", "transient", after=True)  # created, but the id never recorded
    with pytest.raises(Exception):
        w.service().handle(created())
    rec = w.ledger.record("acme")
    assert rec.auth0_client_id is None and rec.auth0_create_intent == "e-created"
    assert len(w.identity.apps) == 1

    w.service().handle(removed())

    assert w.identity.calls["find_applications"] == 1
    assert w.leftovers() == [] and w.orphans() == []


def test_removal_without_intent_does_not_search_auth0():
    w = World()
    w.service().handle(created())
    w.service().handle(removed())
    assert w.identity.calls["find_applications"] == 0


def test_removal_with_an_unknown_profile_still_deletes_the_recorded_grant():
    w = World()
    w.service().handle(created())
    del w.profiles["oem"]
    w.service().handle(removed())
    assert w.leftovers() == []


def test_removal_deletes_the_grant_before_the_application():
    w = World()
    w.service().handle(created())
    start = len(w.log.calls)
    w.service().handle(removed())
    auth0 = [c for c in w.log.calls[start:] if c.startswith("auth0.")]
    assert auth0 == ["auth0.delete_client_grant", "auth0.delete_application"]


def test_removal_twice_with_a_new_event_id_reapplies_harmlessly():
    w = World()
    w.service().handle(created())
    w.service().handle(removed())
    outcome = w.service().handle(removed(event_id="e-removed-2", at=11))
    assert outcome.result == APPLIED and w.ledger.record("acme").last_event_id == "e-removed-2"
    assert w.leftovers() == []
