"""Issue 23 from the hostile side, over fakes: no customer's resources reachable from another's, no repair that
deletes what the ledger holds, no partial change the drift check cannot see. (The same cases on the local stack,
with the real SDKs and stand-ins: tests/e2e/test_ownership_and_partial_changes.py.)"""
from __future__ import annotations

from dataclasses import replace

import pytest

from shared.adapters.drift_log import ResultEventDriftReport
from shared.domain import naming
from shared.domain.drift import DETAIL_MAX, DRIFT, LEDGER, LEFTOVER, ORPHAN
from shared.domain.errors import PermanentError
from shared.domain.records import PROVISIONED, REMOVED
from shared.service_layer.drift import check_drift, reconcile
from shared.service_layer.ports import DriftReport
from tests.unit.world import World, created, removed, rotation, updated

MARKER = "customer-provisioning"


class Collect(DriftReport):
    def __init__(self):
        self.found = []

    def report(self, finding) -> None:
        self.found.append(finding)


def _two():
    w = World()
    svc = w.service()
    svc.handle(created("acme"))
    svc.handle(created("beta", "e-beta", display_name="Beta Ltd"))
    return w, svc


def _mark(w: World, client_id: str, **meta) -> None:
    spec = w.identity.spec_of(client_id)
    w.identity.apps[client_id]["spec"] = replace(spec, client_metadata={**spec.client_metadata, **meta})


# ---- case 1: the ledger, not a marker, says whose an application is ------------------------------------------------
@pytest.mark.parametrize("marker", ["beta", "ghost"])
def test_case01_drift_repair_never_deletes_an_application_the_ledger_records(marker):
    """A's recorded application re-marked for B (or for an id with no ledger row): a finding for A that a repair
    fixes by restoring the marker; before issue 23 the repair deleted A's live application as B's orphan."""
    w, svc = _two()
    acme = w.ledger.record("acme").auth0_client_id
    beta = w.ledger.record("beta").auth0_client_id
    _mark(w, acme, customer_id=marker)

    findings = check_drift(svc.core)
    assert [(f.customer_id, f.kind, f.resource_id) for f in findings] == [("acme", DRIFT, acme)]
    assert f"customer_id={marker!r}" in findings[0].detail and "for 'acme'" in findings[0].detail
    assert findings[0].repairable

    result = reconcile(svc, Collect(), repair=True)
    assert set(result.repaired) == {"acme"} and not result.failed
    assert acme in w.identity.apps and beta in w.identity.apps  # nothing deleted
    assert w.identity.spec_of(acme).client_metadata["customer_id"] == "acme"  # the marker restored
    assert w.ledger.record("acme").auth0_client_id == acme and w.ledger.record("beta").auth0_client_id == beta
    assert check_drift(svc.core) == [] and w.orphans() == []


def test_case01_no_use_case_deletes_or_adopts_an_application_another_row_records():
    """Direct repairs and a creation's search by marker: A's application, marked for B, is left alone by B's
    repair, an unknown customer's repair and B's creation after a crash."""
    w, svc = _two()
    acme = w.ledger.record("acme").auth0_client_id
    _mark(w, acme, customer_id="beta")
    svc.repair("beta")
    _mark(w, acme, customer_id="ghost")
    svc.repair("ghost")
    assert acme in w.identity.apps and w.ledger.record("ghost").status == REMOVED
    # a creation whose create intent stands (a crash before its client id was recorded) searches by marker
    _mark(w, acme, customer_id="gamma")
    w.identity.fail("create_application", "transient", after=True)  # created, answer lost
    with pytest.raises(Exception):
        svc.handle(created("gamma", "e-gamma"))
    svc.handle(created("gamma", "e-gamma"))
    assert w.ledger.record("gamma").auth0_client_id != acme and acme in w.identity.apps


def test_case01_adopting_an_application_another_row_records_is_refused():
    w, svc = _two()
    acme = w.ledger.record("acme").auth0_client_id
    w.identity.apps[acme]["spec"] = replace(w.identity.spec_of(acme), client_metadata={})  # marker wiped
    with pytest.raises(PermanentError, match="customer 'acme'.s in the ledger"):
        svc.handle(created("beta2", "e-b2", existing_client_id=acme))
    assert w.identity.spec_of(acme).client_metadata == {}


# ---- case 2: the guard behind the names ----------------------------------------------------------------------------
def test_case02_a_secret_or_entry_marked_for_another_customer_is_never_overwritten_or_deleted():
    w = World()
    svc = w.service()
    secret = naming.secret_name("acme")
    w.secrets.set_secret(secret, "beta's", content_type="x", tags={"customer_id": "beta"})
    with pytest.raises(PermanentError, match="marked for customer 'beta'"):
        svc.handle(created("acme"))
    assert w.secrets.value(secret) == "beta's"
    svc.handle(removed("acme", "e-removed", at=10))
    assert w.secrets.value(secret) == "beta's"  # the removal skipped it

    w2 = World()
    svc2 = w2.service()
    w2.gateway.servers[naming.authorization_server_id("acme")] = replace(
        _spec_of_another(w2), description="Auth0 application of customer beta (profile oem), managed by " + MARKER)
    with pytest.raises(PermanentError, match="authorization server auth0-acme is marked for customer 'beta'"):
        svc2.handle(created("acme"))
    svc2.handle(removed("acme", "e-removed", at=10))
    assert naming.authorization_server_id("acme") in w2.gateway.servers


def _spec_of_another(w: World):
    other = World()
    other.service().handle(created("beta"))
    return other.gateway.servers[naming.authorization_server_id("beta")]


def test_case02_customers_whose_legacy_names_collided_get_their_own_now():
    a, b = "AcMeCOrPoRATiOn-Eu-weSt", "AcmEcORPORaTiOn-eU-weSt"
    w = World()
    svc = w.service()
    svc.handle(created(a, "e-a"))
    svc.handle(created(b, "e-b"))
    ra, rb = w.ledger.record(a), w.ledger.record(b)
    assert {ra.keyvault_secret_name, ra.apim_authorization_server_id, ra.apim_subscription_id}.isdisjoint(
        {rb.keyvault_secret_name, rb.apim_authorization_server_id, rb.apim_subscription_id})
    svc.handle(removed(b, "e-b-removed"))
    assert w.orphans() == [] and w.secrets.value(ra.keyvault_secret_name) == w.identity.secret_of(ra.auth0_client_id)


def test_case02_migration_a_customer_recorded_under_legacy_names_keeps_them(monkeypatch):
    """The names before issue 23 are adopted from the ledger row: drift, update, rotation and removal all use them;
    nothing is renamed (a new subscription id would be new keys for the customer)."""
    w = World()
    svc = w.service()
    with monkeypatch.context() as m:  # provisioned by the code before issue 23
        m.setattr(naming, "secret_name", lambda cid, prefix="": naming.legacy_secret_name(cid))
        m.setattr(naming, "authorization_server_id", lambda cid, prefix="": naming.legacy_authorization_server_id(cid))
        m.setattr(naming, "subscription_id", lambda cid, prefix="": naming.legacy_subscription_id(cid))
        svc.handle(created("Acme.Corp", "e-1"))
    rec = w.ledger.record("Acme.Corp")
    assert rec.keyvault_secret_name == naming.legacy_secret_name("Acme.Corp") != naming.secret_name("Acme.Corp")
    assert check_drift(svc.core) == []
    svc.handle(updated("Acme.Corp", "e-2", displayName="Acme Group"))
    svc.handle(rotation("Acme.Corp", "e-3"))
    rec = w.ledger.record("Acme.Corp")
    # The legacy subscription is kept and still bound to the customer's client (its display name, the gateway's key).
    assert w.gateway.subscriptions[naming.legacy_subscription_id("Acme.Corp")]["display_name"] == rec.auth0_client_id
    assert w.secrets.value(naming.legacy_secret_name("Acme.Corp")) == w.identity.secret_of(rec.auth0_client_id)
    assert naming.secret_name("Acme.Corp").lower() not in w.secrets.active  # nothing made under the new names
    assert check_drift(svc.core) == []
    svc.handle(removed("Acme.Corp", "e-4", at=20))
    assert w.leftovers() == []


def test_case02_migration_a_legacy_resource_no_row_records_is_reported_not_deleted():
    w = World()
    svc = w.service()
    svc.handle(created("Acme.Corp"))
    old = naming.legacy_secret_name("Acme.Corp")
    w.secrets.set_secret(old, "v", content_type="x", tags={"customer_id": "Acme.Corp"})
    findings = [f for f in check_drift(svc.core) if f.resource_id == old]
    assert [(f.kind, f.repairable) for f in findings] == [(LEFTOVER, False)]
    reconcile(svc, Collect(), repair=True)
    assert w.secrets.value(old) == "v"


# ---- case 3: markers that are no customer id ------------------------------------------------------------------------
@pytest.mark.parametrize("marker", ["x y", "x" * 200, "a/b", "a#b", "a?b", "\x1b[31m"])
def test_case03_orphans_marked_with_invalid_ids_are_reported_unrepairable_and_reach_the_crm(marker):
    w = World(results=True)
    svc = w.service()
    svc.handle(created("acme"))
    acme = w.ledger.record("acme").auth0_client_id
    orphan = w.identity.add_application(replace(w.identity.spec_of(acme),
                                                client_metadata={"customer_id": marker, "managed_by": MARKER}))
    report = ResultEventDriftReport(svc, "run-1")
    result = reconcile(svc, report, repair=True)
    (finding,) = result.findings
    assert (finding.customer_id, finding.kind, finding.resource_id, finding.repairable) == ("", ORPHAN, orphan, False)
    assert "not a customer id" in finding.detail and len(finding.detail) <= DETAIL_MAX
    assert not result.repaired and orphan in w.identity.apps
    assert list(w.ledger.customers) == ["acme"]  # no ledger row written for the marker
    (event,) = w.results.of_type("customer.drift-detected")
    assert event["data"]["customerId"] is None and event["data"]["finding"] == "orphan"


# ---- case 4: a second, newer customer.created ------------------------------------------------------------------------
def test_case04_a_newer_created_renames_everywhere_and_drift_compares_names():
    w = World()
    svc = w.service()
    svc.handle(created(profile="partner-web", redirect_uris=["https://a.example/cb"]))
    svc.handle(created("acme", "e-created-2", at=1, profile="partner-web", display_name="Acme Renamed",
                       plan="premium", redirect_uris=["https://b.example/cb"]))
    rec = w.ledger.record("acme")
    spec = w.identity.spec_of(rec.auth0_client_id)
    assert (rec.display_name, spec.name, spec.callbacks) == ("Acme Renamed", "Acme Renamed", ("https://b.example/cb",))
    assert w.gateway.servers[rec.apim_authorization_server_id].display_name == "Acme Renamed"
    assert w.gateway.subscriptions[rec.apim_subscription_id]["display_name"] == rec.auth0_client_id  # the binding
    assert w.identity.grants_of(rec.auth0_client_id)[0]["scopes"] == ("read:data", "write:data")
    assert w.identity.apps_of("acme") == [rec.auth0_client_id] and check_drift(svc.core) == []

    # renamed behind the app's back, in each service: three findings, one repair
    w.identity.apps[rec.auth0_client_id]["spec"] = replace(spec, name="Evil")
    w.gateway.subscriptions[rec.apim_subscription_id]["display_name"] = "Evil"
    w.gateway.servers[rec.apim_authorization_server_id] = replace(
        w.gateway.servers[rec.apim_authorization_server_id], display_name="Evil")
    findings = {f.resource: f.detail for f in check_drift(svc.core)}
    assert sorted(findings) == ["application", "authorization_server", "subscription"]
    assert "name" in findings["application"] and "name" in findings["authorization_server"]
    assert findings["subscription"].startswith("bound to client 'Evil'")  # its display name is the binding
    reconcile(svc, Collect(), repair=True)
    assert check_drift(svc.core) == [] and w.identity.spec_of(rec.auth0_client_id).name == "Acme Renamed"


def test_case04_an_adopted_application_keeps_its_own_name():
    w = World()
    svc = w.service()
    made = w.identity.add_application(replace(_app_spec(w), name="Hand made", description="by hand",
                                              client_metadata={}))
    svc.handle(created("acme", existing_client_id=made))
    assert w.identity.spec_of(made).name == "Hand made" and check_drift(svc.core) == []


def _app_spec(w: World):
    other = World()
    other.service().handle(created("beta"))
    return other.identity.spec_of(other.ledger.record("beta").auth0_client_id)


# ---- case 5: an update Auth0 refuses half-way ------------------------------------------------------------------------
@pytest.mark.parametrize("refused", ["update_application", "update_client_grant"])
def test_case05_an_update_refused_by_auth0_lands_nothing(refused):
    w = World()
    svc = w.service()
    svc.handle(created(profile="partner-web", redirect_uris=["https://a.example/cb"]))
    before = w.snapshot()
    w.identity.fail(refused, "permanent")
    with pytest.raises(PermanentError):
        svc.handle(updated(displayName="Acme Group", plan="premium", redirectUris=["https://b.example/cb"]))
    rec = w.ledger.record("acme")
    assert rec.status == PROVISIONED and rec.claim_owner is None and rec.last_error
    after = w.snapshot()
    for part in ("apps", "grants", "servers", "subscriptions", "secrets"):
        assert after[part] == before[part], part
    assert check_drift(svc.core) == []


def test_case05_what_a_restore_cannot_put_back_is_a_finding_the_repair_finishes():
    w = World()
    svc = w.service()
    svc.handle(created(profile="partner-web", redirect_uris=["https://a.example/cb"]))
    w.identity.fail("update_client_grant", "permanent")
    # The forward PATCH of the authorization server lands, its restore is refused. (The subscription's display name
    # is the client id, the gateway's binding: an update does not change it.)
    w.gateway.fail("update_authorization_server", "permanent", skip=1)
    with pytest.raises(PermanentError):
        svc.handle(updated(displayName="Acme Group", plan="premium"))
    findings = check_drift(svc.core)
    # Both of the entry's changes stayed (the plan's scope and the name): what the restore could not put back.
    assert {f.resource for f in findings} == {"authorization_server"}
    assert any("display name" in f.detail for f in findings) and any("scope" in f.detail for f in findings)
    reconcile(svc, Collect(), repair=True)
    assert check_drift(svc.core) == [] and w.ledger.record("acme").display_name == "Acme Corp"


def test_case05_drift_looks_at_every_status():
    w = World()
    svc = w.service()
    svc.handle(created())
    rec = w.ledger.record("acme")
    for status in ("updating", "rotating", "removing", "provisioning"):
        w.ledger.customers["acme"] = replace(rec, status=status, claim_owner=None, claim_expires=None)
        found = [(f.service, f.repairable) for f in check_drift(svc.core) if f.service == LEDGER]
        assert found == [(LEDGER, status != "provisioning")], status
    w.ledger.customers["acme"] = replace(rec, status="updating")
    reconcile(svc, Collect(), repair=True)
    assert w.ledger.record("acme").status == PROVISIONED and check_drift(svc.core) == []


# ---- case 6: a rotation that fails for good after Auth0 rotated -----------------------------------------------------
@pytest.mark.parametrize("service,method", [("secrets", "set_secret"),
                                            ("gateway", "set_authorization_server_secret")])
def test_case06_a_rotation_failing_after_auth0_rotated_is_reported_and_repaired(service, method):
    w = World()
    svc = w.service()
    svc.handle(created())
    getattr(w, service).fail(method, PermanentError("403 Forbidden", service="x", operation=method, status=403))
    with pytest.raises(PermanentError):
        svc.handle(rotation())
    rec = w.ledger.record("acme")
    assert (rec.status, rec.claim_owner, rec.rotation_pending) == (PROVISIONED, None, "e-rotate")
    assert svc.handle(updated(displayName="Acme Group")).result == "applied"  # not "not provisioned yet"
    (finding,) = check_drift(svc.core)
    assert finding.service == "keyvault" and "rotation e-rotate did not finish" in finding.detail
    reconcile(svc, Collect(), repair=True)
    rec = w.ledger.record("acme")
    auth0 = w.identity.secret_of(rec.auth0_client_id)
    assert w.secrets.value(rec.keyvault_secret_name) == auth0
    assert w.gateway.servers[rec.apim_authorization_server_id].client_secret == auth0
    assert rec.rotation_pending is None and rec.keyvault_secret_version == w.secrets.latest(
        rec.keyvault_secret_name)["version"]
    assert check_drift(svc.core) == [] and w.identity.apps[rec.auth0_client_id]["rotations"] == 1


# ---- case 13: one clipping rule for a finding's detail --------------------------------------------------------------
def test_case13_a_findings_detail_is_clipped_the_same_everywhere():
    w = World(results=True)
    svc = w.service()
    svc.handle(created(profile="partner-web", redirect_uris=["https://a.example/cb"]))
    rec = w.ledger.record("acme")
    long = tuple(f"https://evil.example/{'x' * 1900}/{i}" for i in range(150))
    w.identity.apps[rec.auth0_client_id]["spec"] = replace(w.identity.spec_of(rec.auth0_client_id), callbacks=long)
    (finding,) = reconcile(svc, ResultEventDriftReport(svc, "run-1")).findings
    assert len(finding.detail) == DETAIL_MAX and finding.detail.endswith("\u2026")
    assert finding.as_dict()["detail"] == finding.detail and finding.log_line().count(finding.detail) == 1
    (event,) = w.results.of_type("customer.drift-detected")
    assert event["data"]["detail"] == finding.detail
