"""The Key Vault stand-in, driven by the real azure-keyvault-secrets SecretClient over TLS.

Credentials are the real azure-identity ones, pointed at the managed-identity stand-in through IDENTITY_ENDPOINT /
IDENTITY_HEADER, so the SDK's whole challenge flow (401 -> token for https://vault.azure.net -> retry) runs.
"""
from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
import urllib.error

import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceExistsError,
                                   ResourceNotFoundError, ServiceRequestError)
from azure.core.rest import HttpRequest
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulators.control import StandInControl
from emulators.identity import IdentityStandIn
from emulators.keyvault import KeyVaultStandIn
from emulators.tls import ensure_tls_files
from emulators.tokens import TokenIssuer

pytestmark = pytest.mark.timeout(60)

TENANT = "00000000-0000-4000-8000-0000000000aa"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
# Anything that would make DefaultAzureCredential pick another credential before managed identity.
OTHER_CREDENTIAL_ENV = (
    "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return ensure_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def issuer():
    return TokenIssuer()


@pytest.fixture(scope="module")
def identity(issuer):
    standin = IdentityStandIn(issuer).start()
    yield standin
    standin.stop()


@pytest.fixture(autouse=True)
def managed_identity_env(monkeypatch, identity):
    for name in OTHER_CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", identity.endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", identity.header_secret)


@pytest.fixture(scope="module")
def started_vaults():
    vaults: list[KeyVaultStandIn] = []
    yield vaults
    # Each stop() waits up to the server's poll interval: stop them all at once.
    stoppers = [threading.Thread(target=vault.stop) for vault in vaults]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join()


@pytest.fixture
def make_vault(issuer, tls, started_vaults):
    """A fresh vault per test: a new port also means a fresh entry in the SDK's process-wide challenge cache."""

    def make(**kw) -> KeyVaultStandIn:
        vault = KeyVaultStandIn(issuer, tls=tls, **kw).start()
        started_vaults.append(vault)
        return vault

    return make


@pytest.fixture
def vault(make_vault):
    return make_vault()


@pytest.fixture
def client_for(tls):
    clients = []

    def make(vault, credential=None, **kw) -> SecretClient:
        kw.setdefault("retry_backoff_factor", 0.01)
        client = SecretClient(vault_url=vault.url, credential=credential or ManagedIdentityCredential(),
                              verify_challenge_resource=False, connection_verify=str(tls.ca_cert), **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(vault, client_for):
    return client_for(vault)


def control(vault, tls) -> StandInControl:
    return StandInControl(vault.url, verify=str(tls.ca_cert))


def raw(vault, tls, method, path, token=None, headers=None, **kw) -> httpx.Response:
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_cert))) as http:
        return http.request(method, vault.url + path, headers=headers, **kw)


def vault_token(issuer, audience="https://vault.azure.net", **kw) -> str:
    return issuer.issue(audience, subject="test", **kw)[0]


class StaticCredential:
    """A TokenCredential handing out a token the test chose (e.g. for the wrong audience)."""

    def __init__(self, token: str):
        self.token = token

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


# -- authentication ------------------------------------------------------------------------------------------------
def test_challenge_flow_with_default_azure_credential(vault, client_for, identity, tls):
    client = client_for(vault, credential=DefaultAzureCredential())
    before = identity.issued.get("https://vault.azure.net", 0)

    secret = client.set_secret("first", "value-1")
    assert secret.value == "value-1"
    assert client.get_secret("first").value == "value-1"

    calls = control(vault, tls).calls()["calls"]
    # One bodiless, token-less PUT elicited the challenge; the SDK then resent it with a token and reused both
    # the challenge and the token for the GET.
    assert calls == {"secrets.set": 2, "secrets.get": 1}
    assert vault.auth_rejections == {"missing_token": 1}
    assert control(vault, tls).config()["auth_rejections"] == {"missing_token": 1}
    assert identity.issued["https://vault.azure.net"] == before + 1


def test_unauthenticated_request_gets_the_challenge(vault, tls):
    resp = raw(vault, tls, "GET", "/secrets?api-version=7.6")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.windows.net/{TENANT}", resource="https://vault.azure.net"')
    assert resp.json() == {"error": {"code": "Unauthorized",
                                     "message": "AKV10000: Request is missing a Bearer or PoP token."}}
    basic = raw(vault, tls, "GET", "/secrets?api-version=7.6", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401


def test_wrong_audience_is_rejected(vault, client_for, issuer):
    arm_token = vault_token(issuer, audience="https://management.azure.com")
    client = client_for(vault, credential=StaticCredential(arm_token))
    with pytest.raises(ClientAuthenticationError) as caught:
        client.get_secret("anything")
    assert caught.value.status_code == 401
    assert caught.value.error.code == "Unauthorized"
    assert caught.value.error.message == (
        "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com.")
    assert vault.auth_rejections["invalid_audience"] >= 1


@pytest.mark.parametrize("token_kind", ["expired", "bad_signature", "garbage"])
def test_invalid_tokens_are_rejected(vault, tls, issuer, token_kind):
    token = {
        "expired": lambda: vault_token(issuer, lifetime=-60),
        "bad_signature": lambda: vault_token(TokenIssuer()),
        "garbage": lambda: "not-a-jwt",
    }[token_kind]()
    resp = raw(vault, tls, "GET", "/secrets?api-version=7.6", token=token)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer authorization=")
    assert resp.json()["error"]["code"] == "Unauthorized"
    assert vault.auth_rejections == {"invalid_token": 1}


def test_the_sdk_refuses_plain_http(vault, tls):
    client = SecretClient(vault_url=vault.url.replace("https://", "http://"), credential=ManagedIdentityCredential(),
                          verify_challenge_resource=False, connection_verify=str(tls.ca_cert), retry_total=0)
    with pytest.raises(ServiceRequestError, match="non-TLS"):
        client.get_secret("anything")
    with pytest.raises(ValueError, match="plain http"):
        KeyVaultStandIn(TokenIssuer(), tls=None)


# -- api-version -----------------------------------------------------------------------------------------------------
def test_api_versions(vault, client_for, tls, issuer):
    client = client_for(vault)
    client.set_secret("versioned", "v")

    unknown = client.send_request(HttpRequest("GET", "/secrets/versioned?api-version=9.9"))
    assert unknown.status_code == 400
    assert unknown.json() == {"error": {"code": "BadParameter", "message":
                                        "The specified version (9.9) is not recognized. Consider using the latest "
                                        "supported version (2026-04-01)."}}

    missing = raw(vault, tls, "GET", "/secrets/versioned", token=vault_token(issuer))
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "BadParameter"

    # The SDK's default (2026-04-01) was used above; older versions the SDK can pin are accepted as well.
    for version in ("7.0", "7.4", "7.6", "2025-07-01"):
        assert client_for(vault, api_version=version).get_secret("versioned").value == "v"


# -- secrets ---------------------------------------------------------------------------------------------------------
def test_set_creates_versions_and_get_reads_latest_or_one(client, vault, tls, issuer):
    first = client.set_secret("db-password", "one", content_type="text/plain", tags={"customer": "c1"})
    second = client.set_secret("db-password", "two")

    for s in (first, second):
        assert HEX32.match(s.properties.version)
        assert s.id == f"{vault.url}/secrets/db-password/{s.properties.version}"
        assert s.properties.enabled is True
        assert s.properties.recovery_level == "Recoverable+Purgeable"
        assert s.properties.recoverable_days == 90
        assert s.properties.created_on == s.properties.updated_on
    assert first.properties.version != second.properties.version
    assert first.properties.content_type == "text/plain" and first.properties.tags == {"customer": "c1"}
    # Each version carries its own properties.
    assert second.properties.content_type is None and second.properties.tags is None

    assert client.get_secret("db-password").value == "two"
    assert client.get_secret("db-password", first.properties.version).value == "one"

    # The latest version is also reachable with a trailing slash (what the SDK sends) and without it.
    token = vault_token(issuer)
    for path in ("/secrets/db-password", "/secrets/db-password/"):
        resp = raw(vault, tls, "GET", path + "?api-version=7.6", token=token)
        assert resp.status_code == 200 and resp.json()["value"] == "two"
        assert set(resp.json()) == {"value", "id", "attributes"}  # unset fields are absent, not null

    versions = sorted(client.list_properties_of_secret_versions("db-password"), key=lambda p: p.created_on)
    assert {p.version for p in versions} == {first.properties.version, second.properties.version}
    assert all(p.id.startswith(f"{vault.url}/secrets/db-password/") for p in versions)


def test_list_pages_without_values(make_vault, client_for, tls):
    vault = make_vault(page_size=2)
    client = client_for(vault)
    for i in range(5):
        client.set_secret(f"customer-{i}", f"value-{i}")
    control(vault, tls).clear_calls()

    props = list(client.list_properties_of_secrets())
    assert [p.name for p in props] == [f"customer-{i}" for i in range(5)]
    assert all(p.version is None and p.id == f"{vault.url}/secrets/{p.name}" for p in props)
    assert control(vault, tls).calls()["calls"]["secrets.list"] == 3  # 2 + 2 + 1, following nextLink

    pages = [list(page) for page in client.list_properties_of_secrets(max_page_size=4).by_page()]
    assert [len(p) for p in pages] == [4, 1]

    for i in range(3):
        client.set_secret("customer-0", f"again-{i}")
    control(vault, tls).clear_calls()
    assert len(list(client.list_properties_of_secret_versions("customer-0"))) == 4
    assert control(vault, tls).calls()["calls"]["secrets.list_versions"] == 2


def test_list_page_body_and_maxresults_bounds(make_vault, client_for, tls, issuer):
    vault = make_vault()
    client = client_for(vault)
    client.set_secret("a", "1")
    client.set_secret("b", "2")
    token = vault_token(issuer)
    first = raw(vault, tls, "GET", "/secrets?api-version=7.6&maxresults=1", token=token).json()
    assert "value" not in first["value"][0]
    assert first["nextLink"].startswith(f"{vault.url}/secrets?api-version=7.6&$skiptoken=")
    second = raw(vault, tls, "GET", first["nextLink"].replace(vault.url, ""), token=token).json()
    assert [item["id"] for item in second["value"]] == [f"{vault.url}/secrets/b"]
    assert second["nextLink"] is None
    for bad in ("0", "26", "x"):
        resp = raw(vault, tls, "GET", f"/secrets?api-version=7.6&maxresults={bad}", token=token)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "BadParameter"
    resp = raw(vault, tls, "GET", "/secrets?api-version=7.6&$skiptoken=!!", token=token)
    assert resp.status_code == 400


def test_update_properties(client):
    first = client.set_secret("api-key", "k1", tags={"a": "1", "b": "2"})
    client.set_secret("api-key", "k2")

    updated = client.update_secret_properties("api-key", content_type="application/json", tags={"c": "3"})
    assert updated.content_type == "application/json"
    assert updated.tags == {"c": "3"}  # replaces, doesn't merge
    assert updated.version != first.properties.version  # no version given: the latest

    old = client.update_secret_properties("api-key", first.properties.version, enabled=False)
    assert old.enabled is False and old.tags == {"a": "1", "b": "2"}
    assert old.updated_on >= old.created_on

    with pytest.raises(HttpResponseError) as caught:
        client.get_secret("api-key", first.properties.version)
    assert caught.value.status_code == 403
    assert caught.value.error.code == "Forbidden"
    assert caught.value.error.innererror == {"code": "SecretDisabled"}
    assert caught.value.error.message == "Operation get is not allowed on a disabled secret."
    assert client.get_secret("api-key").value == "k2"

    # Disabled secrets can still be updated, and re-enabled.
    client.update_secret_properties("api-key", first.properties.version, enabled=True)
    assert client.get_secret("api-key", first.properties.version).value == "k1"


# -- soft delete -----------------------------------------------------------------------------------------------------
def test_delete_then_recover(client, vault, tls):
    created = client.set_secret("to-delete", "keep-me", tags={"t": "1"})
    control(vault, tls).clear_calls()

    started = time.monotonic()
    poller = client.begin_delete_secret("to-delete")
    poller.wait()
    assert poller.done()
    deleted = poller.result()
    assert deleted.recovery_id == f"{vault.url}/deletedsecrets/to-delete"
    assert deleted.properties.version == created.properties.version
    assert (deleted.scheduled_purge_date - deleted.deleted_date).days == 90
    # The poller's first GET /deletedsecrets/{name} found it: no 2-second polling interval.
    assert control(vault, tls).calls()["calls"] == {"secrets.delete": 1, "deleted_secrets.get": 1}
    assert time.monotonic() - started < 1.5

    with pytest.raises(ResourceNotFoundError) as caught:
        client.get_secret("to-delete")
    assert caught.value.error.code == "SecretNotFound"
    assert client.get_deleted_secret("to-delete").properties.tags == {"t": "1"}
    assert [d.name for d in client.list_deleted_secrets()] == ["to-delete"]
    assert [p.name for p in client.list_properties_of_secrets()] == []

    recover = client.begin_recover_deleted_secret("to-delete")
    recover.wait()
    assert recover.result().name == "to-delete"
    assert client.get_secret("to-delete").value == "keep-me"
    assert list(client.list_deleted_secrets()) == []


def test_set_on_a_deleted_name_conflicts(client):
    client.set_secret("reused", "v1")
    client.begin_delete_secret("reused").wait()
    with pytest.raises(ResourceExistsError) as caught:
        client.set_secret("reused", "v2")
    err = caught.value
    assert err.status_code == 409
    assert err.error.code == "Conflict"
    assert err.error.innererror == {"code": "ObjectIsDeletedButRecoverable"}
    assert err.error.message.startswith("Secret reused is currently in a deleted but recoverable state")


def test_purge_then_set_works(client, vault, tls):
    old = client.set_secret("purged", "v1")
    client.begin_delete_secret("purged").wait()
    client.purge_deleted_secret("purged")
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret("purged")
    fresh = client.set_secret("purged", "v2")
    assert fresh.properties.version != old.properties.version
    assert len(list(client.list_properties_of_secret_versions("purged"))) == 1
    assert control(vault, tls).calls()["calls"]["deleted_secrets.purge"] == 1


def test_purge_protection_refuses_purge(make_vault, client_for):
    vault = make_vault(purge_protection=True, retention_days=7)
    client = client_for(vault)
    secret = client.set_secret("protected", "v1")
    assert secret.properties.recovery_level == "CustomizedRecoverable"
    assert secret.properties.recoverable_days == 7
    deleted = client.begin_delete_secret("protected").result()
    assert (deleted.scheduled_purge_date - deleted.deleted_date).days == 7

    with pytest.raises(HttpResponseError) as caught:
        client.purge_deleted_secret("protected")
    assert caught.value.status_code == 403
    assert caught.value.error.code == "Forbidden"
    assert 'Operation "purge" is not allowed because purge protection is enabled' in caught.value.error.message

    # The way out: recover, then set a new version.
    client.begin_recover_deleted_secret("protected").wait()
    assert client.set_secret("protected", "v2").value == "v2"


def test_deleted_secrets_expire_at_their_scheduled_purge_date(make_vault, client_for):
    now = [1_700_000_000.0]
    vault = make_vault(clock=lambda: now[0], retention_days=7)
    client = client_for(vault)
    client.set_secret("short-lived", "v1")
    client.begin_delete_secret("short-lived").wait()
    now[0] += 7 * 86_400
    assert list(client.list_deleted_secrets()) == []
    assert client.set_secret("short-lived", "v2").value == "v2"


def test_deleted_disabled_secret_answers_403_and_the_delete_poller_still_ends(client):
    client.set_secret("disabled", "v", enabled=False)
    poller = client.begin_delete_secret("disabled")
    poller.wait()
    assert poller.done()
    with pytest.raises(HttpResponseError) as caught:
        client.get_deleted_secret("disabled")
    assert caught.value.status_code == 403


# -- validation and names ----------------------------------------------------------------------------------------------
def test_names_are_validated(client):
    for bad in ("bad_name", "x" * 128, "dot.ted"):
        with pytest.raises(HttpResponseError) as caught:
            client.set_secret(bad, "v")
        assert caught.value.status_code == 400
        assert caught.value.error.code == "BadParameter"
        assert caught.value.error.message == f"The request URI contains an invalid name: {bad}"
    assert client.set_secret("x" * 127, "v").name == "x" * 127
    assert client.set_secret("Customer-42-Secret", "v").name == "Customer-42-Secret"


@pytest.mark.parametrize("kwargs, ok", [
    ({"value": "x" * 25_600}, True),
    ({"value": "x" * 25_601}, False),
    ({"value": "é" * 12_801}, False),  # 25,602 bytes in UTF-8
    ({"value": "v", "tags": {f"t{i}": "v" for i in range(15)}}, True),
    ({"value": "v", "tags": {f"t{i}": "v" for i in range(16)}}, False),
    ({"value": "v", "content_type": "c" * 255}, True),
    ({"value": "v", "content_type": "c" * 256}, False),
])
def test_value_tags_and_content_type_limits(client, kwargs, ok):
    if ok:
        assert client.set_secret("limits", **kwargs).value == kwargs["value"]
        return
    with pytest.raises(HttpResponseError) as caught:
        client.set_secret("limits", **kwargs)
    assert caught.value.status_code == 400
    assert caught.value.error.code == "BadParameter"


def test_malformed_bodies_are_rejected(vault, tls, issuer):
    token = vault_token(issuer)
    for body in (b"{not json", b"[]", b'{"value": 5}', b"{}", b'{"value": "v", "attributes": {"enabled": "yes"}}'):
        resp = raw(vault, tls, "PUT", "/secrets/body-check?api-version=7.6", token=token, content=body,
                   headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, body
        assert resp.json()["error"]["code"] == "BadParameter"


def test_names_are_case_insensitive_and_keep_their_first_casing(client):
    client.set_secret("MySecret", "v1")
    again = client.set_secret("MYSECRET", "v2")
    assert again.name == "MySecret"
    got = client.get_secret("mysecret")
    assert got.name == "MySecret" and got.value == "v2"
    assert [p.name for p in client.list_properties_of_secrets()] == ["MySecret"]
    assert len(list(client.list_properties_of_secret_versions("mySECRET"))) == 2

    client.begin_delete_secret("mysecret").wait()
    assert client.get_deleted_secret("MYSECRET").name == "MySecret"
    with pytest.raises(ResourceExistsError):
        client.set_secret("mySecret", "v3")


def test_unknown_names_and_versions_are_not_found(client):
    client.set_secret("exists", "v")
    calls = [
        lambda: client.get_secret("missing"),
        lambda: client.get_secret("exists", "0" * 32),
        lambda: client.update_secret_properties("missing", enabled=False),
        lambda: client.begin_delete_secret("missing"),
        lambda: client.get_deleted_secret("missing"),
        lambda: client.begin_recover_deleted_secret("missing"),
        lambda: client.purge_deleted_secret("missing"),
        lambda: list(client.list_properties_of_secret_versions("missing")),
    ]
    for call in calls:
        with pytest.raises(ResourceNotFoundError) as caught:
            call()
        assert caught.value.error.code == "SecretNotFound"
    with pytest.raises(ResourceNotFoundError) as caught:
        client.get_secret("exists", "0" * 32)
    assert caught.value.error.message.startswith(f"A secret with (name/id) exists/{'0' * 32} was not found")


# -- faults, persistence -----------------------------------------------------------------------------------------------
def test_scripted_503_is_retried_by_the_sdk(client, client_for, vault, tls):
    client.set_secret("flaky", "v")
    ctl = control(vault, tls)
    ctl.clear_calls()

    ctl.fail_next("secrets.get", 503, count=2)
    assert client.get_secret("flaky").value == "v"
    assert ctl.calls() == {"calls": {"secrets.get": 3}, "injected": {"secrets.get:503": 2}}

    no_retry = client_for(vault, retry_total=0)
    ctl.fail_next("secrets.get", 503)
    with pytest.raises(HttpResponseError) as caught:
        no_retry.get_secret("flaky")
    assert caught.value.status_code == 503
    assert caught.value.error.code == "InjectedFault"
    assert no_retry.get_secret("flaky").value == "v"


def test_state_round_trip_and_reset(vault, client, make_vault, client_for, tls, issuer, tmp_path):
    client.set_secret("kept", "v1", tags={"k": "v"})
    client.set_secret("gone", "v")
    client.begin_delete_secret("gone").wait()
    state = vault.dump_state()
    assert state["secrets"]["kept"]["versions"][0]["value"] == "v1"
    assert "gone" in state["deleted"]

    other = make_vault(state_file=tmp_path / "kv.json")
    other.load_state(state)
    other.persist()
    restarted = make_vault(state_file=tmp_path / "kv.json")  # loads the file on construction
    restarted_client = client_for(restarted)
    assert restarted_client.get_secret("kept").value == "v1"
    assert [d.name for d in restarted_client.list_deleted_secrets()] == ["gone"]

    control(vault, tls).reset()
    assert vault.dump_state() == {"secrets": {}, "deleted": {}}
    assert vault.auth_rejections == {}
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("kept")


def test_control_config(vault, tls):
    ctl = control(vault, tls)
    cfg = ctl.config(page_size=3, purge_protection=True)
    assert cfg["page_size"] == 3 and cfg["purge_protection"] is True and cfg["retention_days"] == 90
    assert vault._recovery_level() == "Recoverable"
    with pytest.raises(urllib.error.HTTPError) as caught:
        ctl.config(page_size=26)
    assert caught.value.code == 400


def test_skiptoken_is_opaque_base64_json(make_vault, client_for, tls, issuer):
    vault = make_vault(page_size=1)
    client = client_for(vault)
    client.set_secret("one", "1")
    client.set_secret("two", "2")
    body = raw(vault, tls, "GET", "/secrets?api-version=7.6", token=vault_token(issuer)).json()
    token = re.search(r"\$skiptoken=([^&]+)", body["nextLink"]).group(1)
    assert json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == {"NextMarker": "one"}
