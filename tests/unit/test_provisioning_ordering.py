"""Duplicates, stale and out-of-order events, and re-provisioning a removed customer."""
from __future__ import annotations

import pytest

from shared.domain.records import APPLIED, DUPLICATE, PROVISIONED, REMOVED, STALE
from tests.unit.world import World, created, removed


def test_duplicate_removal_changes_nothing():
    w = World()
    w.service().handle(created())
    w.service().handle(removed())
    before = w.snapshot()
    calls = len(w.log.calls)

    outcome = w.service().handle(removed())

    assert (outcome.result, outcome.status) == (DUPLICATE, REMOVED)
    assert w.snapshot() == before
    assert w.log.calls[calls:] == ["ledger.get_customer", "ledger.set_audit"]


def test_removed_before_created_leaves_the_customer_removed():
    w = World()
    w.service().handle(removed(at=10))
    outcome = w.service().handle(created(at=0))  # sent first, delivered last

    assert (outcome.result, outcome.status) == (STALE, REMOVED)
    assert w.ledger.audit("acme", "e-created").outcome == STALE
    assert "e-removed" in w.ledger.audit("acme", "e-created").reason
    assert w.leftovers() == [] and w.identity.calls["create_application"] == 0
    # A stale event's redelivery is a duplicate.
    assert w.service().handle(created(at=0)).result == DUPLICATE


def test_created_older_than_an_applied_removal_is_stale():
    w = World()
    w.service().handle(created(at=0))
    w.service().handle(removed(at=10))
    outcome = w.service().handle(created(event_id="e-late", at=5))
    assert outcome.result == STALE and w.leftovers() == []


def test_removal_older_than_the_last_created_is_stale():
    w = World()
    w.service().handle(created(at=0))
    w.service().handle(created(event_id="e-new", at=20))
    outcome = w.service().handle(removed(at=10))
    assert (outcome.result, outcome.status) == (STALE, PROVISIONED)
    assert len(w.identity.apps) == 1 and w.orphans() == []


def test_older_created_after_a_newer_created_is_stale():
    w = World()
    w.service().handle(created(event_id="e-new", at=20, display_name="New Name"))
    outcome = w.service().handle(created(event_id="e-old", at=10, display_name="Old Name"))
    assert outcome.result == STALE
    assert w.ledger.record("acme").display_name == "New Name"


def test_event_with_the_same_time_as_the_last_one_is_not_stale():
    w = World()
    w.service().handle(created(at=0))
    assert w.service().handle(created(event_id="e-same-time", at=0)).result == APPLIED


@pytest.mark.parametrize("purge", [False, True], ids=["recover", "purge"])
def test_reprovisioning_after_removal(purge):
    w = World(purge=False)
    svc = w.service(purge_deleted_secrets=purge)
    svc.handle(created(at=0))
    [old] = w.identity.apps_of("acme")
    w.service().handle(removed(at=10))  # soft-deletes the secret: its name stays taken
    assert w.secrets.deleted_names() == ["auth0-client-acme"]

    outcome = svc.handle(created(event_id="e-again", at=20))

    assert (outcome.result, outcome.status) == (APPLIED, PROVISIONED)
    [new] = w.identity.apps_of("acme")
    assert new != old
    assert w.secrets.value("auth0-client-acme") == w.identity.secret_of(new)
    assert w.secrets.latest("auth0-client-acme")["tags"]["client_id"] == new
    assert w.secrets.deleted_names() == []
    assert w.secrets.calls["recover_deleted_secret"] == (0 if purge else 1)
    assert w.secrets.calls["purge_deleted_secret"] == (1 if purge else 0)
    if not purge:  # the recovered secret keeps its history, the new value on top
        assert len(w.secrets.active["auth0-client-acme"]["versions"]) == 2
    else:
        assert len(w.secrets.active["auth0-client-acme"]["versions"]) == 1
    assert w.orphans() == []


@pytest.mark.parametrize("purge", [False, True], ids=["recover", "purge"])
def test_reprovisioning_while_key_vault_still_deletes_the_secret_is_retried_then_frees_the_name(purge):
    from shared.domain.errors import TransientError
    w = World()
    w.secrets.lag_deletes = True
    w.service().handle(created(at=0))
    w.service().handle(removed(at=10))  # returns before Key Vault has finished the soft delete
    assert w.secrets.deleting == {"auth0-client-acme"}
    svc = w.service(purge_deleted_secrets=purge)

    with pytest.raises(TransientError) as info:
        svc.handle(created(event_id="e-again", at=20))
    assert info.value.status == 409

    w.secrets.finish_deletes()
    outcome = svc.handle(created(event_id="e-again", at=20))

    assert (outcome.result, outcome.status) == (APPLIED, PROVISIONED)
    [app] = w.identity.apps_of("acme")  # the application of the first attempt, not a second one
    assert w.secrets.value("auth0-client-acme") == w.identity.secret_of(app)
    assert w.secrets.deleted_names() == []
    assert (w.secrets.calls["recover_deleted_secret"], w.secrets.calls["purge_deleted_secret"]) == \
        ((0, 1) if purge else (1, 0))
    assert w.orphans() == []


def test_reprovisioning_with_purge_protection_recovers_instead():
    w = World(purge_protection=True)
    w.service().handle(created(at=0))
    w.service().handle(removed(at=10))
    outcome = w.service(purge_deleted_secrets=True).handle(created(event_id="e-again", at=20))
    assert outcome.result == APPLIED
    assert w.secrets.calls["recover_deleted_secret"] == 1 and w.orphans() == []


def test_secret_still_deleted_after_recovery_is_transient():
    w = World()
    w.secrets.add_deleted("auth0-client-acme")
    real = w.secrets.recover_deleted_secret
    w.secrets.recover_deleted_secret = lambda name: True  # claims success, but Key Vault is still recovering
    from shared.domain.errors import TransientError
    with pytest.raises(TransientError, match="still soft-deleted"):
        w.service().handle(created())
    w.secrets.recover_deleted_secret = real
    w.expire_claims()
    assert w.service().handle(created()).result == APPLIED
    assert w.orphans() == []


def test_created_during_an_unfinished_removal_replaces_what_is_left():
    w = World()
    w.service().handle(created(at=0))
    # The removal deleted the application, then failed before its final write.
    w.ledger.fail("update_customer", "transient", skip=1, times=2)  # after the claim: the commit, then the
    # failure record
    with pytest.raises(Exception):
        w.service().handle(removed(at=10))
    assert w.identity.apps == {}
    w.expire_claims()

    outcome = w.service("w2").handle(created(event_id="e-again", at=20))

    assert outcome.result == APPLIED and len(w.identity.apps) == 1
    assert w.orphans() == []
    # The removal's redelivery is now older than the last applied event.
    assert w.service().handle(removed(at=10)).result == STALE
    assert len(w.identity.apps) == 1 and w.orphans() == []


def test_created_then_removed_then_created_many_times_leaves_one_application():
    w = World(purge=True)
    for i in range(5):
        w.service().handle(created(event_id=f"c{i}", at=i * 10))
        w.service().handle(removed(event_id=f"r{i}", at=i * 10 + 5))
    w.service().handle(created(event_id="final", at=100))
    assert len(w.identity.apps) == 1 and w.orphans() == []


@pytest.mark.parametrize("order", ["created-first", "removed-first"])
def test_equal_times_are_decided_by_the_tie_rule_not_by_arrival(order):
    """Regression (issue 18, case 3): removed and created for one customer, both stamped with the same second,
    ended provisioned or removed depending on which arrived first. At equal times the removal wins."""
    w = World()
    events = [created(at=0), removed(at=0)]
    for event in events if order == "created-first" else reversed(events):
        w.service().handle(event)
    record = w.ledger.record("acme")
    assert record.status == REMOVED and record.last_event_id == "e-removed"
    assert w.leftovers() == [] and w.orphans() == []
    if order == "removed-first":
        assert w.ledger.audit("acme", "e-created").outcome == STALE
        assert w.identity.calls["create_application"] == 0


def test_two_created_events_at_the_same_time_apply_in_event_id_order():
    w = World()
    w.service().handle(created(event_id="e-b", at=0, display_name="Second"))
    outcome = w.service().handle(created(event_id="e-a", at=0, display_name="First"))
    assert outcome.result == STALE and "same time" in w.ledger.audit("acme", "e-a").reason
    assert w.ledger.record("acme").display_name == "Second"
