"""The customer's journey end to end: events through the queue and the local Functions host, then the customer's own
credentials (Key Vault's secret, APIM's subscription key) against Auth0's token endpoint and the local gateway, which
runs the policy files of infra/policies. Done when the credentials work, only for that customer, only within its
plan's scopes, and stop working on rotation and removal."""
from __future__ import annotations

import io
import ssl
import time

import jwt
import pytest

from devtools.call import call_api, main as devtools_call, read_credentials, request_token
from devtools.send import build_event, send_events
from devtools.waiting import wait_until
from opstool.cli import main as opstool
from tests.conftest import customer_status

pytestmark = pytest.mark.timeout(240)

# A machine-to-machine profile with a plan: read only by default, read and write on "premium".
M2M_PROFILE = """
[profiles.m2m-plans]
description = "Machine-to-machine client whose plan sets its scopes (journey test)."
app_type = "non_interactive"
grant_types = ["client_credentials"]
token_endpoint_auth_method = "client_secret_post"
first_party = false
token_lifetime = 3600
audience = "${API_AUDIENCE}"
scopes = ["read:data"]
plans = { premium = ["read:data", "write:data"] }
apim_product = "partners"
apim_authorization_server = "none"
redirect_uris = "none"
"""


@pytest.fixture
def journey_settings(stack_env, monkeypatch, tmp_path):
    """The stack's settings with the journey's profile added (before the host starts, which reads them)."""
    from shared.settings import APP_ROOT

    profiles = tmp_path / "client_profiles.toml"
    profiles.write_text((APP_ROOT / "config" / "client_profiles.toml").read_text() + M2M_PROFILE)
    stack_env["CLIENT_PROFILES_PATH"] = str(profiles)
    monkeypatch.setenv("CLIENT_PROFILES_PATH", str(profiles))
    return stack_env


@pytest.fixture
def api_url(local_stack) -> str:
    return local_stack.describe()["api"]["url"]


def _send(settings, kind: str, customer: str, **kw) -> None:
    send_events([build_event(kind, customer, **kw)], settings)


def _provisioned(settings, ledger, customer: str, profile: str = "oem") -> None:
    _send(settings, "created", customer, profile=profile)
    wait_until(lambda: customer_status(ledger, customer) == "provisioned", timeout=40, what=f"{customer} provisioned")


def _token(settings, client_id: str, secret: str) -> str:
    answer = request_token(settings, client_id, secret)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def test_created_plan_upgrade_and_removal_as_the_customer_sees_them(journey_settings, app_host, ledger, local_stack,
                                                                     api_url):
    settings = journey_settings
    _provisioned(settings, ledger, "jr-acme", profile="m2m-plans")
    creds = read_credentials(settings, "jr-acme")

    # devtools call: the whole journey in one command, printing each step and never a secret.
    out = io.StringIO()
    assert devtools_call(["--customer", "jr-acme", "--path", "/orders/7", "--gateway", api_url], out=out) == 0, \
        out.getvalue()
    printed = out.getvalue()
    assert creds.client_secret not in printed and creds.subscription_key not in printed
    assert "200:" in printed and '"client_id": "' + creds.client_id in printed

    token = _token(settings, creds.client_id, creds.client_secret)
    # The token as a resource server checks it: the tenant's JWKS, RS256, Auth0's claims.
    jwks = jwt.PyJWKClient(f"https://{settings['AUTH0_DOMAIN']}/.well-known/jwks.json",
                           ssl_context=ssl.create_default_context(cafile=str(local_stack.tls.ca_cert)))
    claims = jwt.decode(token, jwks.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                        audience=settings["API_AUDIENCE"], issuer=f"https://{settings['AUTH0_DOMAIN']}/")
    assert (claims["sub"], claims["azp"], claims["gty"], claims["scope"]) == (
        f"{creds.client_id}@clients", creds.client_id, "client-credentials", "read:data")

    # created: the call answers 200 and the backend sees the customer.
    answer = call_api(settings, api_url, token=token, subscription_key=creds.subscription_key, path="/orders")
    assert answer.status_code == 200, answer.text
    assert answer.json()["caller"] == {"subscription": "customer-jr-acme", "client_id": creds.client_id,
                                       "scopes": ["read:data"]}
    assert answer.json()["received"]["subscription_key"] is False  # the key stops at the gateway

    # An operation outside the plan's scopes is refused, and the backend never sees it.
    calls_before = local_stack.control("backend").calls()["calls"].get("backend.request", 0)
    answer = call_api(settings, api_url, token=token, subscription_key=creds.subscription_key, method="POST",
                      path="/orders", data="{}")
    assert answer.status_code == 403, answer.text
    assert "write:data" in answer.json()["message"]
    assert local_stack.control("backend").calls()["calls"].get("backend.request", 0) == calls_before

    # customer.updated to the larger plan: the new scope works after a new token (the old one keeps its scopes).
    _send(settings, "updated", "jr-acme", profile=None, plan="premium")
    wait_until(lambda: ledger.get_customer("jr-acme")[0].plan == "premium", timeout=40, what="plan premium applied")
    assert call_api(settings, api_url, token=token, subscription_key=creds.subscription_key, method="POST",
                    path="/orders", data="{}").status_code == 403
    upgraded = _token(settings, creds.client_id, creds.client_secret)
    answer = call_api(settings, api_url, token=upgraded, subscription_key=creds.subscription_key, method="POST",
                      path="/orders", data='{"n": 1}')
    assert answer.status_code == 200, answer.text
    assert answer.json()["caller"]["scopes"] == ["read:data", "write:data"] and answer.json()["body"] == {"n": 1}

    # removal: the token request fails, and the unexpired token is refused once the subscription is gone.
    assert jwt.decode(upgraded, options={"verify_signature": False})["exp"] > time.time() + 600
    _send(settings, "removed", "jr-acme")
    wait_until(lambda: customer_status(ledger, "jr-acme") == "removed", timeout=40, what="jr-acme removed")
    refused = request_token(settings, creds.client_id, creds.client_secret)
    assert refused.status_code == 401 and refused.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    answer = call_api(settings, api_url, token=upgraded, subscription_key=creds.subscription_key, path="/orders")
    assert answer.status_code == 401
    assert answer.json()["message"].startswith("Access denied due to invalid subscription key")


def test_a_token_with_another_customers_subscription_key_is_refused(stack_env, app_host, ledger, api_url):
    for customer in ("jr-north", "jr-south"):
        _provisioned(stack_env, ledger, customer)
    north, south = read_credentials(stack_env, "jr-north"), read_credentials(stack_env, "jr-south")
    north_token = _token(stack_env, north.client_id, north.client_secret)
    south_token = _token(stack_env, south.client_id, south.client_secret)

    # Each with its own: 200.
    for token, creds in ((north_token, north), (south_token, south)):
        answer = call_api(stack_env, api_url, token=token, subscription_key=creds.subscription_key)
        assert answer.status_code == 200 and answer.json()["caller"]["client_id"] == creds.client_id
    # Crossed, in the header or the query parameter: refused by the binding, never forwarded.
    crossed = call_api(stack_env, api_url, token=south_token, subscription_key=north.subscription_key)
    assert crossed.status_code == 403, crossed.text
    assert crossed.json() == {"statusCode": 403,
                              "message": "The access token was not issued to the customer of this subscription key."}
    via_query = call_api(stack_env, f"{api_url}", token=north_token, subscription_key=None,
                         path=f"/items?subscription-key={south.subscription_key}")
    assert via_query.status_code == 403
    # No key at all: the gateway's own 401, before any policy.
    missing = call_api(stack_env, api_url, token=north_token, subscription_key=None)
    assert missing.status_code == 401 and "missing subscription key" in missing.json()["message"]


def test_rotation_the_new_secret_works_and_the_old_one_stops_after_the_overlap(stack_env, app_host, ledger,
                                                                                local_stack, api_url):
    _provisioned(stack_env, ledger, "jr-rot")
    before = read_credentials(stack_env, "jr-rot")
    old_token = _token(stack_env, before.client_id, before.client_secret)
    overlap = 2.0  # the README's "up to thirty seconds", shortened
    local_stack.control("auth0").config(secret_propagation_seconds=overlap)
    try:
        out, err = io.StringIO(), io.StringIO()
        assert opstool(["rotate", "--customer", "jr-rot", "--wait", "60", "--yes"], out=out, err=err) == 0, err.getvalue()
        after = read_credentials(stack_env, "jr-rot")
        assert after.client_secret != before.client_secret and after.client_id == before.client_id
        # Within the overlap the old secret may still work (Auth0's propagation); after it, only the new one.
        deadline = time.monotonic() + overlap + 10
        while request_token(stack_env, after.client_id, after.client_secret).status_code != 200:
            assert time.monotonic() < deadline, "the new secret never started to work"
            time.sleep(0.25)
        assert request_token(stack_env, before.client_id, before.client_secret).status_code == 401
        new_token = _token(stack_env, after.client_id, after.client_secret)
        answer = call_api(stack_env, api_url, token=new_token, subscription_key=after.subscription_key)
        assert answer.status_code == 200 and answer.json()["caller"]["client_id"] == after.client_id
        # A token issued before the rotation stays valid until it expires, as Auth0 documents.
        assert call_api(stack_env, api_url, token=old_token, subscription_key=after.subscription_key).status_code == 200
    finally:
        local_stack.control("auth0").config(secret_propagation_seconds=0)
