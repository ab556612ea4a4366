"""The drift check and its repair over fakes: every kind of finding, the report call, and a repair that converges."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

from shared.domain import naming
from shared.domain.drift import DRIFT, LEFTOVER, MISSING, ORPHAN
from shared.domain.records import REMOVED
from shared.service_layer.drift import check_drift, reconcile
from shared.service_layer.ports import DriftReport
from tests.unit.world import World, created, removed


class Collect(DriftReport):
    def __init__(self):
        self.found = []

    def report(self, finding) -> None:
        self.found.append(finding)


def kinds(findings):
    return sorted((f.customer_id, f.kind, f.resource) for f in findings)


def drifted_world(**world):
    w = World(**world)
    svc = w.service()
    svc.handle(created("acme"))
    svc.handle(created("webco", "e-web", profile="partner-web", redirect_uris=["https://webco.example/cb"]))
    svc.handle(created("gone", "e-gone"))
    svc.handle(removed("gone", "e-gone-removed"))
    acme = w.ledger.record("acme")
    web = w.ledger.record("webco")
    # behind the app's back
    w.gateway.subscriptions[naming.subscription_id("acme")]["state"] = "suspended"
    w.secrets.active.pop(naming.secret_name("acme").lower())
    grant = w.identity.grants_of(acme.auth0_client_id)[0]
    w.identity.grants[grant["id"]]["scopes"] = ("read:data",)
    w.identity.apps[web.auth0_client_id]["spec"] = replace(w.identity.spec_of(web.auth0_client_id),
                                                            callbacks=("https://evil.example/cb",))
    w.gateway.subscriptions.pop(naming.subscription_id("webco"))
    orphan = w.identity.add_application(replace(w.identity.spec_of(acme.auth0_client_id),
                                                client_metadata={"customer_id": "ghost",
                                                                 "managed_by": "customer-provisioning"}))
    w.gateway.subscriptions[naming.subscription_id("gone")] = {"display_name": "x", "product_id": "oem",
                                                               "state": "active"}
    nameless = w.identity.add_application(replace(w.identity.spec_of(acme.auth0_client_id),
                                                  client_metadata={"managed_by": "customer-provisioning"}))
    return w, svc, orphan, nameless


def test_the_check_finds_every_kind_and_the_repair_converges():
    w, svc, orphan, nameless = drifted_world()
    report = Collect()
    result = reconcile(svc, report)
    assert report.found == result.findings  # every finding went through the report, once
    assert kinds(result.findings) == [
        ("", ORPHAN, "application"), ("acme", DRIFT, "client_grant"), ("acme", DRIFT, "subscription"), ("acme", MISSING, "secret"),
        ("ghost", ORPHAN, "application"), ("gone", LEFTOVER, "subscription"),
        ("webco", DRIFT, "application"), ("webco", MISSING, "subscription")]
    assert not result.repaired and orphan in w.identity.apps  # report mode changes nothing

    before = {c: (w.ledger.record(c).last_event_id, w.ledger.record(c).status) for c in ("acme", "webco", "gone")}
    result = reconcile(svc, Collect(), repair=True)
    assert set(result.repaired) == {"acme", "webco", "ghost", "gone"} and not result.failed
    # what is left: the application without a customer, which no use case can claim
    assert [(f.resource_id, f.repairable) for f in check_drift(svc.core)] == [(nameless, False)]
    assert orphan not in w.identity.apps and nameless in w.identity.apps
    # a repair is no CRM event: the last applied event and the status stay as they were
    assert {c: (w.ledger.record(c).last_event_id, w.ledger.record(c).status) for c in before} == before
    assert w.ledger.record("ghost").status == REMOVED and w.ledger.record("ghost").last_event_time is None
    assert w.identity.spec_of(w.ledger.record("webco").auth0_client_id).callbacks == ("https://webco.example/cb",)
    # a CRM event stamped before the repair ran, delivered after it, still applies
    svc.handle(removed("acme", "e-acme-removed", at=5))
    w.identity.apps.pop(nameless)  # the operator's call
    assert w.ledger.record("acme").status == REMOVED and w.orphans() == []


def test_customers_in_the_middle_of_an_event_are_left_alone():
    w = World()
    svc = w.service()
    svc.handle(created("acme"))
    rec = w.ledger.record("acme")
    # another worker holds a claim: it may be creating an application this very moment
    w.ledger.update_customer(replace(rec, claim_owner="w2", claim_expires=w.clock() + dt.timedelta(minutes=5)))
    w.gateway.subscriptions.clear()
    w.identity.add_application(replace(w.identity.spec_of(rec.auth0_client_id)))
    assert check_drift(svc.core) == []
    w.expire_claims()
    assert kinds(check_drift(svc.core)) == [("acme", MISSING, "subscription"), ("acme", ORPHAN, "application")]


def test_the_timers_report_sends_one_drift_event_per_finding_and_a_rerun_of_the_run_sends_none():
    from shared.adapters.drift_log import ResultEventDriftReport

    w, svc, _, _ = drifted_world(results=True)
    before = len(w.results.delivered)
    result = reconcile(svc, ResultEventDriftReport(svc, "run-1"))
    events = w.results.delivered[before:]
    assert [e["type"] for e in events] == ["customer.drift-detected"] * len(result.findings)
    assert sorted((e["data"]["customerId"] or "", e["data"]["finding"]) for e in events) == sorted(
        (f.customer_id, f.kind) for f in result.findings)
    reconcile(svc, ResultEventDriftReport(svc, "run-1"))  # the same run again (a retried timer): same message ids,
    assert w.results.delivered[before + len(events):] == []  # which the topic's duplicate detection drops
    reconcile(svc, ResultEventDriftReport(svc, "run-2"))  # the next run reports what is still there
    assert len(w.results.delivered) == before + 2 * len(events)


def test_a_subscription_bound_to_another_client_is_drift_and_the_repair_binds_it_again():
    """The gateway accepts a subscription's keys only with the tokens of the client its display name names: a name
    changed behind the app's back (another customer's client id) is found, and a repair writes the right one."""
    w = World()
    svc = w.service()
    svc.handle(created("acme"))
    svc.handle(created("bravo", "e-bravo"))
    acme, bravo = w.ledger.record("acme"), w.ledger.record("bravo")
    sub = naming.subscription_id("acme")
    w.gateway.subscriptions[sub]["display_name"] = bravo.auth0_client_id
    [finding] = check_drift(svc.core)
    assert (finding.customer_id, finding.kind, finding.resource) == ("acme", DRIFT, "subscription")
    assert bravo.auth0_client_id in finding.detail and acme.auth0_client_id in finding.detail
    result = reconcile(svc, Collect(), repair=True)
    assert set(result.repaired) == {"acme"} and not result.failed
    assert w.gateway.subscriptions[sub]["display_name"] == acme.auth0_client_id
    assert check_drift(svc.core) == []
