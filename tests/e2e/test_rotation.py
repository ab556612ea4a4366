"""Secret rotation end to end: ``opstool rotate`` sends the request through Service Bus, the local Functions host
applies it with the real SDKs against the stand-ins. The old secret no longer authenticates at Auth0's token
endpoint and the new one does; Key Vault's latest version (tagged with the client id and the rotation time) and the
API Management entry hold the new value; a failure between the Auth0 rotation and the Key Vault write ends, after the
retry, with exactly one rotation."""
from __future__ import annotations

import io
import logging
import ssl

import httpx
import pytest

from devtools.send import build_event, send_events
from devtools.waiting import wait_until
from opstool.cli import main as opstool
from shared.domain import naming
from tests.conftest import customer_status

pytestmark = pytest.mark.timeout(180)
API = "https://api.contoso.local/"


def _client(local_stack, customer: str) -> dict:
    return next(c for c in local_stack.control("auth0").state()["clients"]
                if (c.get("client_metadata") or {}).get("customer_id") == customer)


def _token_status(local_stack, client_id: str, secret: str) -> int:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(local_stack.tls.ca_cert))) as http:
        return http.post(f"{local_stack.auth0.url}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "audience": API}).status_code


def _latest_secret(local_stack, customer: str) -> dict:
    from shared.adapters.credentials import get_credential
    from shared.adapters.keyvault_secrets import KeyVaultSecretStore
    from shared.settings import AppSettings

    store = KeyVaultSecretStore.from_settings(AppSettings.load(local_stack.settings), get_credential())
    try:
        got = store.get_secret(naming.secret_name(customer))
        return {"version": got.version, "value": got.value, "tags": got.tags}
    finally:
        store.close()


def _apim_secret(local_stack, customer: str) -> str:
    servers = local_stack.apim.dump_state()["authorizationServers"]
    return servers[naming.authorization_server_id(customer).lower()]["properties"]["clientSecret"]


def _rotate(customer: str, *extra: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = opstool(["rotate", "--customer", customer, "--wait", "60", "--yes", *extra], out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def _provision(stack_env, ledger, customer: str, profile: str = "oem") -> None:
    send_events([build_event("created", customer, profile=profile)], stack_env)
    wait_until(lambda: customer_status(ledger, customer) == "provisioned", timeout=30, what=f"{customer} provisioned")


def test_rotation_end_to_end(app_host, ledger, stack_env, local_stack, caplog):
    caplog.set_level(logging.INFO)
    _provision(stack_env, ledger, "rot-acme")
    before = _client(local_stack, "rot-acme")
    old = before["client_secret"]
    assert _token_status(local_stack, before["client_id"], old) == 200

    code, text = _rotate("rot-acme")
    assert code == 0, text
    assert "applied" in text
    new = _client(local_stack, "rot-acme")["client_secret"]
    assert new != old
    assert _token_status(local_stack, before["client_id"], old) == 401
    assert _token_status(local_stack, before["client_id"], new) == 200
    latest = _latest_secret(local_stack, "rot-acme")
    assert latest["value"] == new and latest["tags"]["client_id"] == before["client_id"]
    assert latest["tags"]["rotated_at"].endswith("Z")
    assert _apim_secret(local_stack, "rot-acme") == new
    record = ledger.get_customer("rot-acme")[0]
    assert record.status == "provisioned" and record.keyvault_secret_version == latest["version"]
    assert local_stack.control("auth0").calls()["calls"]["clients.rotate_secret"] == 1
    # neither secret in any log record, nor in the ledger's rows
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    rows = repr(ledger.get_customer("rot-acme")) + repr(ledger.list_audit("rot-acme"))
    assert [s for s in (old, new) if s in logged or s in rows] == []


def test_a_failure_between_the_auth0_rotation_and_the_key_vault_write_recovers_to_one_rotation(
        app_host, ledger, stack_env, local_stack):
    _provision(stack_env, ledger, "rot-crash")
    client_id = _client(local_stack, "rot-crash")["client_id"]
    # Auth0 rotates; then every Key Vault write fails for longer than the adapter's in-call retries, so the event
    # fails with Auth0 rotated and Key Vault behind; the scheduled retry must not rotate again.
    local_stack.control("keyvault").fail_next("secrets.set", 503, count=3)
    code, text = _rotate("rot-crash")
    assert code == 0, text
    assert local_stack.control("auth0").calls()["calls"]["clients.rotate_secret"] == 1
    new = _client(local_stack, "rot-crash")["client_secret"]
    assert _latest_secret(local_stack, "rot-crash")["value"] == new == _apim_secret(local_stack, "rot-crash")
    assert _token_status(local_stack, client_id, new) == 200
    audit = [a for a in ledger.list_audit("rot-crash") if a.event_type.endswith("rotation-requested")]
    assert audit[0].outcome == "applied" and "recovered" in (audit[0].reason or "")


def test_a_public_client_is_refused(app_host, ledger, stack_env, local_stack):
    _provision(stack_env, ledger, "rot-spa", profile="partner-spa")
    code, text = _rotate("rot-spa")
    assert code == 1 and "public client" in text
    assert local_stack.control("auth0").calls()["calls"].get("clients.rotate_secret", 0) == 0
