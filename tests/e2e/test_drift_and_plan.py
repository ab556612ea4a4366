"""Drift reconciliation and plan on the local stack, with the real SDKs over the wire.

Drift is made behind the app's back with adapters of its own (the real SDK clients): a subscription deleted, an
application's callbacks changed, a secret deleted, an orphan application created. ``opstool drift`` lists the four;
the timer in report mode reports four and changes nothing; in repair mode it restores all four, and a second check
finds nothing. ``opstool plan`` of a created event lists the five creations, and "No changes" once applied.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
import uuid

import pytest
from azure.functions.timer import TimerRequest

from devtools.listen import receive_results
from opstool.cli import main as opstool
from shared import bootstrap
from shared.domain import naming
from shared.domain.events import parse_event
from shared.service_layer.ports import ApplicationSpec, ApplicationUpdate

pytestmark = pytest.mark.usefixtures("stack_env")


def created_event(customer: str, profile: str = "oem", redirect_uris: list[str] | None = None) -> str:
    data = {"customerId": customer, "displayName": f"{customer} Inc", "profile": profile}
    if redirect_uris:
        data["redirectUris"] = redirect_uris
    return json.dumps({"specversion": "1.0", "id": f"ev-{uuid.uuid4().hex[:8]}", "source": "/crm/test",
                       "type": "customer.created", "time": dt.datetime.now(dt.timezone.utc).isoformat(),
                       "data": data})


def run_opstool(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = opstool(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def drift_findings() -> list[dict]:
    code, out, err = run_opstool("drift", "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    return [line for line in lines if "summary" not in line]


def run_timer(monkeypatch, caplog, *, repair: bool) -> list[str]:
    monkeypatch.setenv("DRIFT_REPAIR", "true" if repair else "false")
    bootstrap.reset()
    from functions.drift_reconciliation import drift_reconciliation

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="customer_provisioning"):
        drift_reconciliation(TimerRequest(past_due=False))
    bootstrap.reset()
    messages = [r.getMessage() for r in caplog.records]
    summary = [m for m in messages if m.startswith("drift reconciliation:")]
    assert len(summary) == 1 and f"mode={'repair' if repair else 'report'} " in summary[0], summary
    return [m for m in messages if m.startswith("drift customer=")]


@pytest.fixture
def service():
    bootstrap.reset()
    yield bootstrap.build_service(bootstrap.load_app_settings(), worker_id="test-provisioner")
    bootstrap.reset()


def test_drift_is_listed_reported_and_repaired(service, monkeypatch, caplog, stack_env):
    service.handle(parse_event(created_event("acme")))
    callbacks = ["https://webco.example/callback"]
    service.handle(parse_event(created_event("webco", "partner-web", callbacks)))
    assert drift_findings() == []

    # Behind the app's back, with separate clients.
    backdoor = bootstrap.build_service(bootstrap.load_app_settings(), worker_id="backdoor")
    webco = service.ledger.get_customer("webco")[0]
    assert backdoor.gateway.delete_subscription(naming.subscription_id("acme"))
    assert backdoor.secrets.delete_secret(naming.secret_name("acme"))
    assert backdoor.identity.update_application(webco.auth0_client_id,
                                                ApplicationUpdate(callbacks=("https://evil.example/cb",)))
    orphan = backdoor.identity.create_application(ApplicationSpec(
        name="Ghost", app_type="non_interactive", grant_types=("client_credentials",),
        token_endpoint_auth_method="client_secret_post", is_first_party=False, token_lifetime=3600,
        client_metadata={"customer_id": "ghost", "profile": "oem", "managed_by": "customer-provisioning"}))

    expected = [("acme", "missing", "apim", "subscription"), ("acme", "missing", "keyvault", "secret"),
                ("ghost", "orphan", "auth0", "application"), ("webco", "drift", "auth0", "application")]
    found = drift_findings()
    assert sorted((f["customer_id"], f["kind"], f["service"], f["resource"]) for f in found) == expected
    code, table, _ = run_opstool("drift")
    assert code == 0 and "4 finding(s)" in table and orphan.client_id in table

    list(receive_results(stack_env, max_wait=1))  # the CRM's subscription, emptied of the provisioning's events
    lines = run_timer(monkeypatch, caplog, repair=False)
    assert len(lines) == 4 and any("kind=orphan" in line and orphan.client_id in line for line in lines)
    events = [e for e in receive_results(stack_env, max_wait=2) if e["type"] == "customer.drift-detected"]
    assert sorted((e["data"]["customerId"], e["data"]["finding"], e["data"]["service"]) for e in events) == [
        (cid, kind, svc) for cid, kind, svc, _ in expected]  # one event per finding, for the CRM
    assert len(drift_findings()) == 4  # report mode changed nothing

    lines = run_timer(monkeypatch, caplog, repair=True)
    assert len(lines) == 4
    assert drift_findings() == []
    assert backdoor.gateway.get_subscription(naming.subscription_id("acme")).state == "active"
    assert backdoor.secrets.get_secret_properties(naming.secret_name("acme")) is not None
    assert backdoor.identity.get_application(webco.auth0_client_id).callbacks == tuple(callbacks)
    assert backdoor.identity.get_application(orphan.client_id) is None
    assert run_timer(monkeypatch, caplog, repair=True) == []


def test_plan_lists_the_five_creations_then_no_changes(service, tmp_path):
    path = tmp_path / "created.json"
    path.write_text(created_event("initech"), encoding="utf-8")
    code, out, err = run_opstool("plan", str(path), "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert sorted((c["service"], c["resource"], c["action"]) for c in plan["changes"]) == [
        ("apim", "authorization_server", "create"), ("apim", "subscription", "create"),
        ("auth0", "application", "create"), ("auth0", "client_grant", "create"), ("keyvault", "secret", "create")]
    code, out, _ = run_opstool("plan", str(path))
    assert "Plan: 5 to create, 0 to adopt, 0 to update, 0 to delete" in out
    assert service.ledger.get_customer("initech")[0] is None  # nothing written, the ledger included

    service.handle(parse_event(path.read_bytes()))
    code, out, _ = run_opstool("plan", str(path))
    assert code == 0 and "No changes" in out
    code, out, _ = run_opstool("plan", "--customer", "initech")
    assert code == 0 and "No changes" in out
