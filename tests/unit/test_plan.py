"""The plan's recording ports over fakes: the use cases' writes are recorded, compared with what exists, and never
made; the ledger is read, never written."""
from __future__ import annotations

from dataclasses import replace

from opstool.plan import plan
from shared.domain.records import PROVISIONING
from tests.unit.world import World, created, removed


def actions(changes):
    return sorted((c.service, c.resource, c.action) for c in changes)


def test_a_removal_plans_five_deletions_and_deletes_nothing():
    w = World()
    w.service().handle(created("acme"))
    before = w.snapshot()
    outcome, changes = plan(w.service("planner"), event=removed("acme"))
    assert outcome.result == "applied"
    assert actions(changes) == [("apim", "authorization_server", "delete"), ("apim", "subscription", "delete"),
                            ("auth0", "application", "delete"), ("auth0", "client_grant", "delete"),
                            ("keyvault", "secret", "delete")]
    assert w.snapshot() == before and w.ledger.record("acme").status == "provisioned"


def test_an_unrecorded_application_is_planned_as_adopted_and_the_rest_created():
    w = World()
    svc = w.service()
    svc.handle(created("acme"))
    app_id = w.ledger.record("acme").auth0_client_id
    # A crash after the create, before its id was recorded: the intent stands, nothing else was made.
    w.ledger.update_customer(replace(w.ledger.record("acme"), status=PROVISIONING, auth0_client_id=None,
                                     auth0_client_grant_id=None, auth0_create_intent="e-created",
                                     last_event_id=None, last_event_time=None, last_event_type=None))
    for grant in w.identity.grants_of(app_id):
        w.identity.grants.pop(grant["id"])
    w.gateway.subscriptions.clear()
    _, changes = plan(w.service("planner"), event=created("acme", "e-created-again", at=1))
    assert actions(changes) == [("apim", "subscription", "create"), ("auth0", "application", "adopt"),
                                ("auth0", "client_grant", "create")]  # the secret and the entry match already
    assert w.gateway.subscriptions == {} and w.identity.grants_of(app_id) == []  # nothing was made
