"""Issue 23 on the local stack, with the real SDKs and the stand-ins: one customer never reaches another's resources,
no repair deletes what the ledger holds, and no partial change is left where the drift check cannot see it.

Each test is one numbered case of the issue (the case number is in its name); the changes behind the app's back
are made with adapters of their own (the real SDK clients), as someone with dashboard or portal access would. The
same cases over fakes: tests/unit/test_ownership.py; the ops tool's own cases: tests/opstool/test_opstool_safety.py.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import uuid

import pytest
from azure.functions.timer import TimerRequest

from devtools.listen import receive_results
from shared import bootstrap
from shared.domain import naming
from shared.domain.drift import DETAIL_MAX
from shared.domain.errors import PermanentError
from shared.domain.events import parse_event
from shared.service_layer.ports import ApplicationSpec, ApplicationUpdate
from tests.e2e.test_drift_and_plan import drift_findings, run_opstool
from tests.terminal import run_on_terminal

pytestmark = [pytest.mark.usefixtures("stack_env"), pytest.mark.timeout(240)]
MARKER = "customer-provisioning"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def event(kind: str, customer: str, *, minutes: float = 0, **data) -> str:
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10) + dt.timedelta(minutes=minutes)
    body = {"customerId": customer, **data}
    if kind == "created":
        body = {"displayName": f"{customer} Inc", "profile": "oem", **body}
    return json.dumps({"specversion": "1.0", "id": f"ev-{uuid.uuid4().hex[:12]}", "source": "/crm/test",
                       "type": f"customer.{kind}", "time": at.isoformat(), "data": body})


def drift_json() -> list[dict]:
    return drift_findings()


@pytest.fixture
def service():
    bootstrap.reset()
    yield bootstrap.build_service(bootstrap.load_app_settings(), worker_id="test-provisioner")
    bootstrap.reset()


@pytest.fixture
def backdoor():
    """The services' own APIs, used behind the app's back."""
    return bootstrap.build_service(bootstrap.load_app_settings(), worker_id="backdoor")


def handle(service, kind: str, customer: str, **kw):
    return service.handle(parse_event(event(kind, customer, **kw)))


def client_of(local_stack, client_id: str) -> dict:
    return next(c for c in local_stack.control("auth0").state()["clients"] if c["client_id"] == client_id)


def secret_versions(local_stack, name: str) -> list[dict]:
    return local_stack.keyvault._secrets[name.lower()]["versions"]


def apim_state(local_stack, kind: str, name: str) -> dict | None:
    return local_stack.apim.dump_state()[kind].get(name.lower())


# ---- case 1 -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("marker", ["beta", "ghost"])
def test_case01_a_re_marked_application_is_repaired_by_restoring_its_marker(service, backdoor, local_stack, marker):
    handle(service, "created", "acme")
    handle(service, "created", "beta")
    acme = service.ledger.get_customer("acme")[0].auth0_client_id
    beta = service.ledger.get_customer("beta")[0].auth0_client_id
    assert backdoor.identity.set_application_metadata(acme, {"customer_id": marker})

    found = drift_json()
    assert [(f["customer_id"], f["kind"], f["resource_id"]) for f in found] == [("acme", "drift", acme)]
    assert f"customer_id={marker!r}" in found[0]["detail"]
    code, out, err = run_opstool("drift", "--repair", "--yes")
    assert code == 0, err
    assert client_of(local_stack, acme)["client_metadata"]["customer_id"] == "acme"
    assert client_of(local_stack, beta)  # nobody's application deleted
    assert service.ledger.get_customer("acme")[0].auth0_client_id == acme and drift_json() == []


# ---- case 2 -------------------------------------------------------------------------------------------------------
def test_case02_two_ids_whose_old_names_collided_each_keep_their_own(service, local_stack):
    a, b = "AcMeCOrPoRATiOn-Eu-weSt", "AcmEcORPORaTiOn-eU-weSt"  # tests/unit/test_naming.py: LEGACY_COLLISION
    handle(service, "created", a)
    handle(service, "created", b)
    ra, rb = (service.ledger.get_customer(c)[0] for c in (a, b))
    assert secret_versions(local_stack, ra.keyvault_secret_name)[-1]["tags"]["customer_id"] == a
    assert apim_state(local_stack, "subscriptions", ra.apim_subscription_id) is not None
    assert ra.apim_subscription_id.lower() != rb.apim_subscription_id.lower()
    handle(service, "removed", b, minutes=5)
    assert apim_state(local_stack, "subscriptions", ra.apim_subscription_id) is not None
    assert apim_state(local_stack, "authorizationServers", ra.apim_authorization_server_id) is not None
    assert secret_versions(local_stack, ra.keyvault_secret_name)[-1]["value"] == client_of(
        local_stack, ra.auth0_client_id)["client_secret"]
    assert drift_json() == []


def test_case02_a_secret_tagged_for_another_customer_is_never_overwritten(service, backdoor, local_stack):
    name = naming.secret_name("gamma")
    backdoor.secrets.set_secret(name, "someone-elses", content_type="text/plain", tags={"customer_id": "delta"})
    with pytest.raises(PermanentError, match="marked for customer 'delta'"):
        handle(service, "created", "gamma")
    handle(service, "removed", "gamma", minutes=5)
    assert [v["value"] for v in secret_versions(local_stack, name)] == ["someone-elses"]


def test_case02_migration_a_customer_recorded_under_the_old_names_keeps_them(service, local_stack, monkeypatch):
    with monkeypatch.context() as m:  # provisioned by the code before issue 23
        m.setattr(naming, "secret_name", lambda cid, prefix="": naming.legacy_secret_name(cid))
        m.setattr(naming, "authorization_server_id", lambda cid, prefix="": naming.legacy_authorization_server_id(cid))
        m.setattr(naming, "subscription_id", lambda cid, prefix="": naming.legacy_subscription_id(cid))
        handle(service, "created", "Old.Customer")
    rec = service.ledger.get_customer("Old.Customer")[0]
    assert rec.apim_subscription_id == naming.legacy_subscription_id("Old.Customer")
    keys = apim_state(local_stack, "subscriptions", rec.apim_subscription_id)["properties"]["primaryKey"]
    assert drift_json() == []
    handle(service, "updated", "Old.Customer", minutes=1, displayName="Old Customer Group")
    handle(service, "credentials-rotation-requested", "Old.Customer", minutes=2)
    sub = apim_state(local_stack, "subscriptions", rec.apim_subscription_id)["properties"]
    # The customer's keys kept, still bound to its client (the display name is the gateway's binding).
    assert sub["displayName"] == rec.auth0_client_id and sub["primaryKey"] == keys
    assert secret_versions(local_stack, rec.keyvault_secret_name)[-1]["value"] == client_of(
        local_stack, rec.auth0_client_id)["client_secret"]
    assert apim_state(local_stack, "subscriptions", naming.subscription_id("Old.Customer")) is None
    assert drift_json() == []
    handle(service, "removed", "Old.Customer", minutes=3)
    assert apim_state(local_stack, "subscriptions", rec.apim_subscription_id) is None
    assert apim_state(local_stack, "authorizationServers", rec.apim_authorization_server_id) is None
    assert rec.keyvault_secret_name.lower() not in local_stack.keyvault._secrets


# ---- case 3 -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("marker", ["x y", "a/b#c?d", "z" * 200])
def test_case03_an_orphan_marked_with_no_customer_id_reaches_the_crm_and_is_not_repaired(
        service, backdoor, stack_env, monkeypatch, caplog, marker):
    orphan = backdoor.identity.create_application(ApplicationSpec(
        name="Odd", app_type="non_interactive", grant_types=("client_credentials",),
        token_endpoint_auth_method="client_secret_post", is_first_party=False, token_lifetime=3600,
        client_metadata={"customer_id": marker, "managed_by": MARKER}))
    list(receive_results(stack_env, max_wait=1))
    monkeypatch.setenv("DRIFT_REPAIR", "true")
    bootstrap.reset()
    from functions.drift_reconciliation import drift_reconciliation
    with caplog.at_level(logging.INFO, logger="customer_provisioning"):
        drift_reconciliation(TimerRequest(past_due=False))  # Table Storage refused the old outbox key
    bootstrap.reset()
    events = [e for e in receive_results(stack_env, max_wait=2) if e["type"] == "customer.drift-detected"]
    assert [(e["data"]["customerId"], e["data"]["finding"], e["data"]["repaired"]) for e in events] == [
        (None, "orphan", False)] and orphan.client_id in events[0]["data"]["resource"]
    assert backdoor.identity.get_application(orphan.client_id) is not None  # not deleted
    assert service.ledger.list_customers() == []  # no row for the marker
    assert any("repairable=no" in r.getMessage() for r in caplog.records)


# ---- case 4 -------------------------------------------------------------------------------------------------------
def test_case04_a_newer_created_renames_everywhere_and_drift_compares_names(service, backdoor, local_stack):
    handle(service, "created", "acme", displayName="Acme Corp")
    handle(service, "created", "acme", minutes=1, displayName="Acme Renamed")
    rec = service.ledger.get_customer("acme")[0]
    assert client_of(local_stack, rec.auth0_client_id)["name"] == "Acme Renamed"
    assert apim_state(local_stack, "subscriptions", rec.apim_subscription_id)["properties"]["displayName"] == \
        rec.auth0_client_id  # the subscription is displayed as the client id: the gateway's binding
    assert apim_state(local_stack, "authorizationServers", rec.apim_authorization_server_id)["properties"][
        "displayName"] == "Acme Renamed"
    assert drift_json() == []
    assert backdoor.identity.update_application(rec.auth0_client_id, ApplicationUpdate(name="Evil Corp"))
    assert [(f["resource"], "name 'Evil Corp'" in f["detail"]) for f in drift_json()] == [("application", True)]
    assert run_opstool("drift", "--repair", "--yes")[0] == 0
    assert client_of(local_stack, rec.auth0_client_id)["name"] == "Acme Renamed" and drift_json() == []


# ---- case 5 -------------------------------------------------------------------------------------------------------
def test_case05_an_update_whose_grant_write_auth0_refuses_changes_nothing(service, local_stack):
    handle(service, "created", "webco", profile="partner-web", redirectUris=["https://webco.example/cb"])
    rec = service.ledger.get_customer("webco")[0]
    before = (client_of(local_stack, rec.auth0_client_id)["name"],
              apim_state(local_stack, "subscriptions", rec.apim_subscription_id)["properties"]["displayName"])
    local_stack.control("auth0").fail_next("client_grants.update", 400)
    with pytest.raises(PermanentError):
        handle(service, "updated", "webco", minutes=1, displayName="Webco Group", plan="premium")
    after = service.ledger.get_customer("webco")[0]
    assert (after.status, after.claim_owner, after.display_name, after.plan) == ("provisioned", None, rec.display_name,
                                                                                 rec.plan)
    assert (client_of(local_stack, rec.auth0_client_id)["name"],
            apim_state(local_stack, "subscriptions", rec.apim_subscription_id)["properties"]["displayName"]) == before
    assert drift_json() == []  # nothing left half-changed
    handle(service, "updated", "webco", minutes=2, displayName="Webco Group")  # the next update applies
    assert service.ledger.get_customer("webco")[0].display_name == "Webco Group"


# ---- cases 6 and 7 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stand_in,op,status", [("keyvault", "secrets.set", 403),
                                                ("apim", "authorization_servers.update", 400)])
def test_case06_a_rotation_failing_for_good_after_auth0_rotated_is_found_and_finished(
        service, local_stack, stand_in, op, status):
    handle(service, "created", "rot")
    rec = service.ledger.get_customer("rot")[0]
    local_stack.control(stand_in).fail_next(op, status)
    with pytest.raises(PermanentError):
        handle(service, "credentials-rotation-requested", "rot", minutes=1)
    after = service.ledger.get_customer("rot")[0]
    assert (after.status, after.claim_owner) == ("provisioned", None) and after.rotation_pending
    handle(service, "updated", "rot", minutes=2, displayName="Rot Group")  # no longer "not provisioned yet"
    assert [(f["service"], "did not finish" in f["detail"]) for f in drift_json()] == [("keyvault", True)]
    assert run_opstool("drift", "--repair", "--yes")[0] == 0
    auth0 = client_of(local_stack, rec.auth0_client_id)["client_secret"]
    server = apim_state(local_stack, "authorizationServers", rec.apim_authorization_server_id)
    assert secret_versions(local_stack, rec.keyvault_secret_name)[-1]["value"] == auth0
    assert server["properties"]["clientSecret"] == auth0
    assert service.ledger.get_customer("rot")[0].rotation_pending is None and drift_json() == []


def test_case07_after_a_rotation_whose_key_vault_answer_was_lost_the_previous_version_is_the_old_secret(
        service, local_stack):
    handle(service, "created", "rot7")
    rec = service.ledger.get_customer("rot7")[0]
    old = client_of(local_stack, rec.auth0_client_id)["client_secret"]
    local_stack.control("keyvault").fail_next("secrets.set", "drop_after")
    handle(service, "credentials-rotation-requested", "rot7", minutes=1)
    new = client_of(local_stack, rec.auth0_client_id)["client_secret"]
    values = [v["value"] for v in secret_versions(local_stack, rec.keyvault_secret_name)]
    assert values == [old, new]


# ---- cases 11, 12, 13: opstool drift -------------------------------------------------------------------------------
def test_case11_drift_with_the_ledger_unreachable_is_one_line_and_exit_3(monkeypatch):
    dead = re.sub(r"TableEndpoint=[^;]*", "TableEndpoint=http://127.0.0.1:9/devstoreaccount1",
                  os.environ["LEDGER_CONNECTION"])  # a port nobody listens on
    monkeypatch.setenv("LEDGER_CONNECTION", dead)
    code, out, err = run_opstool("drift")
    assert code == 3, out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ledger.")


def _drift_repair_scene(service, backdoor):
    handle(service, "created", "acme")
    assert backdoor.gateway.delete_subscription(naming.subscription_id("acme"))


def test_case12_drift_repair_refuses_without_a_terminal_unless_yes(service, backdoor):
    _drift_repair_scene(service, backdoor)
    code, out, err = run_opstool("drift", "--repair")  # the test's stdin is no terminal
    assert code == 2 and "without confirmation" in err and "--yes" in err
    assert backdoor.gateway.get_subscription(naming.subscription_id("acme")) is None  # nothing repaired


def test_case12_drift_repair_asks_on_a_terminal(service, backdoor, stack_env):
    _drift_repair_scene(service, backdoor)
    for answer, code_wanted in ((b"n\n", 1), (b"y\n", 0)):
        code, out, err = run_on_terminal([sys.executable, "-m", "opstool", "drift", "--repair"], answer, cwd=ROOT,
                                         env={**os.environ, "PYTHONPATH": ROOT}, timeout=120)
        assert code == code_wanted, out + err
        assert "Repair 1 customer(s) (acme)" in err and "customer-acme" in out
        repaired = backdoor.gateway.get_subscription(naming.subscription_id("acme")) is not None
        assert repaired is (answer == b"y\n")


def test_case13_a_findings_detail_is_clipped_alike_in_json_and_the_timer_log(service, backdoor, monkeypatch, caplog):
    handle(service, "created", "webco", profile="partner-web", redirectUris=["https://webco.example/cb"])
    client_id = service.ledger.get_customer("webco")[0].auth0_client_id
    callbacks = tuple(f"https://evil.example/{'x' * 1900}/{i}" for i in range(150))
    assert backdoor.identity.update_application(client_id, ApplicationUpdate(callbacks=callbacks))
    (finding,) = drift_json()
    assert len(finding["detail"]) == DETAIL_MAX
    monkeypatch.setenv("DRIFT_REPAIR", "false")
    bootstrap.reset()
    from functions.drift_reconciliation import drift_reconciliation
    with caplog.at_level(logging.INFO, logger="customer_provisioning"):
        drift_reconciliation(TimerRequest(past_due=False))
    bootstrap.reset()
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("drift customer=webco")]
    assert line.endswith("detail=" + finding["detail"])
