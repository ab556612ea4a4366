"""The adapter calls a rotation and an adoption make, through the real SDKs against the stand-ins: Auth0's
rotate-secret and client_metadata merge, Key Vault's latest version with its value and tags, and a PATCH of an API
Management authorization server's client secret that leaves the rest of the entry as it was."""
from __future__ import annotations

import ssl
import uuid

import httpx
import pytest

from shared.adapters import apim_gateway
from shared.adapters.apim_gateway import ApimGateway
from shared.adapters.auth0_identity import Auth0IdentityProvider
from shared.adapters.credentials import get_credential
from shared.adapters.keyvault_secrets import KeyVaultSecretStore
from tests.integration.test_adapter_apim import server_spec, stored_server
from tests.integration.test_adapter_auth0 import API, new_id, spec

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def auth0(settings, auth0_ctl):
    adapter = Auth0IdentityProvider.from_settings(settings)
    yield adapter
    adapter.close()


def _token_status(stack, client_id: str, secret: str) -> int:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(stack.tls.ca_cert))) as http:
        return http.post(f"{stack.auth0.url}/oauth/token", data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "audience": API}).status_code


def test_rotate_secret_issues_a_new_one_and_the_old_one_stops_working(auth0, stack):
    app = auth0.create_application(spec(new_id()))
    auth0.create_client_grant(app.client_id, API, ("read:data",))
    rotated = auth0.rotate_secret(app.client_id)
    assert rotated.client_id == app.client_id and rotated.client_secret not in (None, app.client_secret)
    assert _token_status(stack, app.client_id, app.client_secret) == 401
    assert _token_status(stack, app.client_id, rotated.client_secret) == 200
    assert auth0.get_application(app.client_id, with_secret=True).client_secret == rotated.client_secret
    assert auth0.rotate_secret("no-such-client") is None


def test_set_application_metadata_merges_and_keeps_the_rest(auth0):
    app = auth0.create_application(spec("hand-made"))
    marked = auth0.set_application_metadata(app.client_id, {"customer_id": "acme", "managed_by": "x"})
    assert marked.client_metadata == {"customer_id": "acme", "profile": "oem", "managed_by": "x"}
    again = auth0.get_application(app.client_id, with_secret=True)
    assert again.name == app.name and again.client_secret == app.client_secret
    assert auth0.set_application_metadata("no-such-client", {"a": "b"}) is None


def test_get_secret_returns_the_latest_value_and_tags(settings):
    store = KeyVaultSecretStore.from_settings(settings, get_credential())
    try:
        name = "rot-" + uuid.uuid4().hex[:12]
        assert store.get_secret(name) is None
        store.set_secret(name, "first-" + uuid.uuid4().hex, content_type="text/plain", tags={"n": "1"})
        value = "second-" + uuid.uuid4().hex
        version = store.set_secret(name, value, content_type="text/plain", tags={"n": "2", "rotated_at": "t"})
        got = store.get_secret(name)
        assert (got.version, got.value, got.tags) == (version, value, {"n": "2", "rotated_at": "t"})
        assert value not in repr(got)
    finally:
        store.close()


def test_set_authorization_server_secret_patches_only_the_secret(settings, stack):
    apim_gateway._sku_cache.clear()
    gateway = ApimGateway.from_settings(settings, get_credential())
    try:
        server_id = "rot-" + uuid.uuid4().hex[:12]
        original = server_spec()
        gateway.set_authorization_server(server_id, original)
        assert gateway.set_authorization_server_secret(server_id, "the-new-secret-value") is True
        props = stored_server(stack, server_id)
        assert props["clientSecret"] == "the-new-secret-value" and props["clientId"] == original.client_id
        assert props["displayName"] == "Customer Acme" and props["grantTypes"] == ["clientCredentials"]
        assert gateway.set_authorization_server_secret("rot-missing", "x-secret-value") is False
    finally:
        gateway.close()
        apim_gateway._sku_cache.clear()
