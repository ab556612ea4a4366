"""The API Management stand-in, driven by the real azure-mgmt-apimanagement client and a managed-identity credential.

Raw httpx calls are used only where the SDK cannot produce the request (no token, no If-Match, no api-version).
"""
from __future__ import annotations

import json
import ssl
from types import SimpleNamespace

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import (
    AuthorizationServerContract,
    AuthorizationServerUpdateContract,
    SubscriptionCreateParameters,
    SubscriptionUpdateParameters,
)

from emulators.apim import ApimStandIn
from emulators.control import StandInControl
from emulators.identity import IdentityStandIn
from emulators.tls import ensure_tls_files
from emulators.tokens import TokenIssuer

pytestmark = pytest.mark.timeout(60)

RG, SVC = "rg-local", "apim-local"


def status_body_headers(pipeline_response, body, headers):
    """``cls`` hook of the generated operations: keeps the HTTP status the SDK otherwise hides."""
    return pipeline_response.http_response.status_code, body, headers


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tls = ensure_tls_files(tmp_path_factory.mktemp("tls"))
    issuer = TokenIssuer()
    identity = IdentityStandIn(issuer).start()  # plain http on loopback, as App Service's endpoint
    apim = ApimStandIn(issuer, tls=tls).start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IDENTITY_ENDPOINT", identity.endpoint)
        mp.setenv("IDENTITY_HEADER", identity.header_secret)
        for var in ("IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET"):
            mp.delenv(var, raising=False)
        credential = ManagedIdentityCredential()
        yield SimpleNamespace(tls=tls, issuer=issuer, identity=identity, apim=apim, credential=credential,
                              ctl=StandInControl(apim.url, verify=str(tls.ca_cert)))
    apim.stop()
    identity.stop()


@pytest.fixture
def apim(stack):
    stack.ctl.reset()  # state, faults and counters
    stack.ctl.config(sku="Developer", authorization_server_limit=None, page_size=100, if_match_required=True)
    return stack.apim


def client(stack, **kw) -> ApiManagementClient:
    return ApiManagementClient(stack.credential, stack.apim.subscription_id, base_url=stack.apim.url,
                               connection_verify=str(stack.tls.ca_cert), **kw)


@pytest.fixture
def mgmt(stack, apim):
    return client(stack)


def server(name="Customer A", **kw) -> AuthorizationServerContract:
    fields = dict(display_name=name, client_registration_endpoint="https://tenant.example/register",
                  authorization_endpoint="https://tenant.example/authorize",
                  token_endpoint="https://tenant.example/oauth/token", grant_types=["clientCredentials"],
                  client_id="client-a", client_secret="secret-a", bearer_token_sending_methods=["authorizationHeader"],
                  client_authentication_method=["Body"])
    fields.update(kw)
    return AuthorizationServerContract(**fields)


def raw(stack, method, path, *, token=True, api_version="2024-05-01", headers=None, body=None):
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = "Bearer " + stack.issuer.issue("https://management.azure.com", "test")[0]
    params = {"api-version": api_version} if api_version else {}
    with httpx.Client(verify=ssl.create_default_context(cafile=str(stack.tls.ca_cert))) as http:
        return http.request(method, stack.apim.url + stack.apim.service_id + path, params=params, headers=hdrs,
                            content=body if isinstance(body, bytes) else None if body is None else json.dumps(body))


# -- service -----------------------------------------------------------------------------------------
def test_service_resource(mgmt):
    svc = mgmt.api_management_service.get(RG, SVC)
    assert (svc.sku.name, svc.sku.capacity) == ("Developer", 1)
    assert svc.provisioning_state == "Succeeded"
    assert svc.gateway_url == "https://apim-local.azure-api.net"
    assert svc.management_api_url and svc.publisher_email and svc.etag
    assert svc.id.endswith("/providers/Microsoft.ApiManagement/service/apim-local")


def test_unknown_resource_group_and_service_are_404(mgmt):
    with pytest.raises(ResourceNotFoundError) as e:
        mgmt.api_management_service.get("rg-other", SVC)
    assert e.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as e:
        mgmt.authorization_server.get(RG, "apim-other", "x")
    assert e.value.error.code == "ResourceNotFound"


def test_unknown_subscription_is_404(stack, apim):
    other = ApiManagementClient(stack.credential, "11111111-1111-4111-8111-111111111111", base_url=apim.url,
                                connection_verify=str(stack.tls.ca_cert))
    with pytest.raises(ResourceNotFoundError) as e:
        other.api_management_service.get(RG, SVC)
    assert e.value.error.code == "SubscriptionNotFound"


# -- authorization servers -------------------------------------------------------------------------
def test_create_then_replace_and_get_hides_secrets(mgmt):
    status, created, headers = mgmt.authorization_server.create_or_update(
        RG, SVC, "cust-a", server(resource_owner_username="u", resource_owner_password="p"),
        cls=status_body_headers)
    assert status == 201 and headers["ETag"]
    assert created.client_secret is None and created.resource_owner_password is None
    assert created.use_in_test_console is True  # spec default
    status, replaced, headers2 = mgmt.authorization_server.create_or_update(
        RG, SVC, "cust-a", server(name="Customer A v2"), cls=status_body_headers)
    assert status == 200 and headers2["ETag"] != headers["ETag"]
    _, got, got_headers = mgmt.authorization_server.get(RG, SVC, "cust-a", cls=status_body_headers)
    assert got.display_name == "Customer A v2" and got.client_id == "client-a"
    assert got.client_secret is None and got.resource_owner_username is None
    assert got.grant_types == ["clientCredentials"] and got.client_authentication_method == ["Body"]
    assert got_headers["ETag"] == headers2["ETag"]
    assert got.id.endswith("/authorizationServers/cust-a") and got.type.endswith("/authorizationServers")
    assert mgmt.authorization_server.get_entity_tag(RG, SVC, "cust-a") is True


def test_list_secrets(mgmt):
    mgmt.authorization_server.create_or_update(
        RG, SVC, "cust-a", server(resource_owner_username="owner", resource_owner_password="pw"))
    secrets = mgmt.authorization_server.list_secrets(RG, SVC, "cust-a")
    assert (secrets.client_secret, secrets.resource_owner_username, secrets.resource_owner_password) == (
        "secret-a", "owner", "pw")


def test_update_and_delete_with_if_match(mgmt):
    mgmt.authorization_server.create_or_update(RG, SVC, "cust-a", server())
    updated = mgmt.authorization_server.update(
        RG, SVC, "cust-a", "*", AuthorizationServerUpdateContract(client_secret="rotated"))
    assert updated.client_id == "client-a"  # a PATCH merges
    assert mgmt.authorization_server.list_secrets(RG, SVC, "cust-a").client_secret == "rotated"
    _, _, headers = mgmt.authorization_server.get(RG, SVC, "cust-a", cls=status_body_headers)
    etag = headers["ETag"]
    mgmt.authorization_server.update(RG, SVC, "cust-a", etag, AuthorizationServerUpdateContract(display_name="B"))
    with pytest.raises(HttpResponseError) as e:  # the ETag moved with the change above
        mgmt.authorization_server.delete(RG, SVC, "cust-a", etag)
    assert e.value.status_code == 412 and e.value.error.code == "PreconditionFailed"
    _, _, headers = mgmt.authorization_server.get(RG, SVC, "cust-a", cls=status_body_headers)
    mgmt.authorization_server.delete(RG, SVC, "cust-a", headers["ETag"])
    with pytest.raises(ResourceNotFoundError):
        mgmt.authorization_server.get(RG, SVC, "cust-a")


def test_stale_if_match_on_update_and_put(mgmt):
    _, _, headers = mgmt.authorization_server.create_or_update(RG, SVC, "cust-a", server(), cls=status_body_headers)
    stale = headers["ETag"]
    mgmt.authorization_server.create_or_update(RG, SVC, "cust-a", server(name="again"), if_match=stale)
    for call in (lambda: mgmt.authorization_server.update(RG, SVC, "cust-a", stale,
                                                          AuthorizationServerUpdateContract(display_name="x")),
                 lambda: mgmt.authorization_server.create_or_update(RG, SVC, "cust-a", server(), if_match=stale)):
        with pytest.raises(HttpResponseError) as e:
            call()
        assert e.value.status_code == 412


def test_delete_unknown_is_404(mgmt):
    with pytest.raises(ResourceNotFoundError) as e:
        mgmt.authorization_server.delete(RG, SVC, "nobody", "*")
    assert e.value.status_code == 404 and e.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError):
        mgmt.authorization_server.list_secrets(RG, SVC, "nobody")


def test_missing_required_fields_are_a_validation_error(mgmt):
    with pytest.raises(HttpResponseError) as e:
        mgmt.authorization_server.create_or_update(RG, SVC, "cust-a", AuthorizationServerContract(display_name="A"))
    assert e.value.status_code == 400 and e.value.error.code == "ValidationError"
    assert {d.target for d in e.value.error.details} == {
        "clientRegistrationEndpoint", "authorizationEndpoint", "clientId", "grantTypes"}


@pytest.mark.parametrize("bad, target", [
    (dict(grant_types=["password"]), "grantTypes"),
    (dict(client_authentication_method=["Header"]), "clientAuthenticationMethod"),
    (dict(bearer_token_sending_methods=["cookie"]), "bearerTokenSendingMethods"),
    (dict(display_name="x" * 51), "displayName"),
    (dict(authorization_endpoint="not a url"), "authorizationEndpoint"),
    (dict(authorization_methods=["POST"]), "authorizationMethods"),
])
def test_invalid_fields_are_rejected(mgmt, bad, target):
    with pytest.raises(HttpResponseError) as e:
        mgmt.authorization_server.create_or_update(RG, SVC, "cust-a", server(**bad))
    assert e.value.status_code == 400
    assert [d.target for d in e.value.error.details] == [target]


def test_invalid_identifier_is_rejected(mgmt):
    with pytest.raises(HttpResponseError) as e:
        mgmt.authorization_server.create_or_update(RG, SVC, "a" * 81, server())
    assert e.value.status_code == 400 and e.value.error.details[0].target == "authsid"


def test_tier_limit_on_authorization_servers(mgmt):
    for i in range(10):  # Developer tier: 10
        mgmt.authorization_server.create_or_update(RG, SVC, f"cust-{i}", server())
    with pytest.raises(HttpResponseError) as e:
        mgmt.authorization_server.create_or_update(RG, SVC, "cust-10", server())
    assert e.value.status_code == 400 and e.value.error.code == "ValidationError"
    assert "limit" in e.value.error.message and "10" in e.value.error.message
    mgmt.authorization_server.create_or_update(RG, SVC, "cust-3", server(name="replace is fine"))


def test_tier_limit_follows_sku_config(stack, mgmt):
    stack.ctl.config(sku="Standard")
    assert stack.ctl.config()["authorization_server_limit"] == 500
    stack.ctl.config(authorization_server_limit=1)
    mgmt.authorization_server.create_or_update(RG, SVC, "one", server())
    with pytest.raises(HttpResponseError):
        mgmt.authorization_server.create_or_update(RG, SVC, "two", server())


def test_list_pages_across_next_links(mgmt):
    for i in range(5):
        mgmt.authorization_server.create_or_update(RG, SVC, f"cust-{i}", server(name=f"C{i}"))
    pages = [list(p) for p in mgmt.authorization_server.list_by_service(RG, SVC, top=2).by_page()]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [s.name for p in pages for s in p] == [f"cust-{i}" for i in range(5)]
    assert all(s.client_secret is None for p in pages for s in p)
    assert [s.name for s in mgmt.authorization_server.list_by_service(RG, SVC, filter="startswith(name,'cust-3')")] \
        == ["cust-3"]


def test_default_page_size_pages_without_top(stack, mgmt):
    stack.ctl.config(page_size=3)
    for i in range(4):
        mgmt.authorization_server.create_or_update(RG, SVC, f"cust-{i}", server())
    assert len(list(mgmt.authorization_server.list_by_service(RG, SVC))) == 4


# -- subscriptions ---------------------------------------------------------------------------------
def test_subscription_default_state_is_submitted(mgmt):
    status, sub, headers = mgmt.subscription.create_or_update(
        RG, SVC, "sub-a", SubscriptionCreateParameters(scope="/products/oem", display_name="Customer A"),
        cls=status_body_headers)
    assert status == 201 and headers["ETag"]
    assert sub.state == "submitted"
    assert sub.scope.endswith("/providers/Microsoft.ApiManagement/service/apim-local/products/oem")
    assert sub.primary_key is None and sub.secondary_key is None and sub.created_date is not None
    active = mgmt.subscription.create_or_update(
        RG, SVC, "sub-b", SubscriptionCreateParameters(scope="/products/partners", display_name="B", state="active"),
        notify=False, app_type="developerPortal")
    assert active.state == "active"


def test_subscription_keys_only_from_list_secrets(mgmt):
    mgmt.subscription.create_or_update(RG, SVC, "sub-a", SubscriptionCreateParameters(
        scope="/products/oem", display_name="A", primary_key="p" * 32))
    got = mgmt.subscription.get(RG, SVC, "sub-a")
    assert got.primary_key is None and got.secondary_key is None
    keys = mgmt.subscription.list_secrets(RG, SVC, "sub-a")
    assert keys.primary_key == "p" * 32 and len(keys.secondary_key) == 32


def test_regenerate_keys(mgmt):
    mgmt.subscription.create_or_update(RG, SVC, "sub-a", SubscriptionCreateParameters(scope="/apis", display_name="A"))
    before = mgmt.subscription.list_secrets(RG, SVC, "sub-a")
    status = mgmt.subscription.regenerate_primary_key(RG, SVC, "sub-a", cls=lambda r, b, h: r.http_response.status_code)
    assert status == 204
    after = mgmt.subscription.list_secrets(RG, SVC, "sub-a")
    assert after.primary_key != before.primary_key and after.secondary_key == before.secondary_key
    mgmt.subscription.regenerate_secondary_key(RG, SVC, "sub-a")
    assert mgmt.subscription.list_secrets(RG, SVC, "sub-a").secondary_key != before.secondary_key


def test_subscription_scope_forms(stack, mgmt):
    full = f"{stack.apim.service_id}/products/OEM"
    sub = mgmt.subscription.create_or_update(RG, SVC, "sub-a", SubscriptionCreateParameters(
        scope=full, display_name="A", owner_id="/users/u1"))
    assert sub.scope == f"{stack.apim.service_id}/products/oem"
    assert sub.owner_id == f"{stack.apim.service_id}/users/u1"
    with pytest.raises(HttpResponseError) as e:
        mgmt.subscription.create_or_update(RG, SVC, "sub-b", SubscriptionCreateParameters(
            scope="/products/unknown", display_name="B"))
    assert e.value.status_code == 400 and e.value.error.details[0].target == "scope"
    with pytest.raises(HttpResponseError) as e:
        mgmt.subscription.create_or_update(RG, SVC, "sub-b", SubscriptionCreateParameters(
            scope="/subscriptions/other/resourceGroups/x/providers/Microsoft.ApiManagement/service/y/apis",
            display_name="B"))
    assert e.value.status_code == 400


def test_subscription_required_fields(mgmt):
    with pytest.raises(HttpResponseError) as e:
        mgmt.subscription.create_or_update(RG, SVC, "sub-a", SubscriptionCreateParameters(state="active"))
    assert {d.target for d in e.value.error.details} == {"scope", "displayName"}
    with pytest.raises(HttpResponseError) as e:
        mgmt.subscription.create_or_update(RG, SVC, "sub-a", SubscriptionCreateParameters(
            scope="/apis", display_name="A", state="enabled"))
    assert [d.target for d in e.value.error.details] == ["state"]


def test_subscription_update_list_and_delete(mgmt):
    for i in range(3):
        mgmt.subscription.create_or_update(RG, SVC, f"sub-{i}", SubscriptionCreateParameters(
            scope="/products/oem", display_name=f"S{i}"))
    _, _, headers = mgmt.subscription.get(RG, SVC, "sub-1", cls=status_body_headers)
    updated = mgmt.subscription.update(RG, SVC, "sub-1", headers["ETag"],
                                       SubscriptionUpdateParameters(state="active", state_comment="approved"))
    assert updated.state == "active" and updated.display_name == "S1"
    with pytest.raises(HttpResponseError) as e:
        mgmt.subscription.update(RG, SVC, "sub-1", headers["ETag"], SubscriptionUpdateParameters(state="suspended"))
    assert e.value.status_code == 412
    assert [s.name for s in mgmt.subscription.list(RG, SVC, top=2)] == ["sub-0", "sub-1", "sub-2"]
    assert [s.name for s in mgmt.subscription.list(RG, SVC, filter="state eq 'active'")] == ["sub-1"]
    mgmt.subscription.delete(RG, SVC, "sub-1", "*")
    with pytest.raises(ResourceNotFoundError):
        mgmt.subscription.delete(RG, SVC, "sub-1", "*")


def test_product_subscriptions_limit_per_user(stack):
    tls = stack.tls
    apim = ApimStandIn(stack.issuer, tls=tls, products=[
        {"id": "single", "displayName": "One per user", "state": "published", "subscriptionsLimit": 1}]).start()
    try:
        mgmt = ApiManagementClient(stack.credential, apim.subscription_id, base_url=apim.url,
                                   connection_verify=str(tls.ca_cert))
        params = SubscriptionCreateParameters(scope="/products/single", display_name="A", owner_id="/users/u1")
        mgmt.subscription.create_or_update(RG, SVC, "first", params)
        with pytest.raises(HttpResponseError) as e:
            mgmt.subscription.create_or_update(RG, SVC, "second", params)
        assert e.value.status_code == 400 and "limit" in e.value.error.message
    finally:
        apim.stop()


# -- products --------------------------------------------------------------------------------------
def test_products_seeded_from_config(mgmt):
    assert [p.name for p in mgmt.product.list_by_service(RG, SVC)] == ["oem", "partners"]
    oem = mgmt.product.get(RG, SVC, "oem")
    assert (oem.display_name, oem.state, oem.subscription_required) == ("OEM partners", "published", True)
    with pytest.raises(ResourceNotFoundError):
        mgmt.product.get(RG, SVC, "nope")


# -- ARM envelope: auth, api-version, If-Match ------------------------------------------------------
def test_token_for_another_audience_is_401(stack, apim):
    vault_scoped = client(stack, credential_scopes=["https://vault.azure.net/.default"])
    with pytest.raises(ClientAuthenticationError) as e:
        vault_scoped.api_management_service.get(RG, SVC)
    assert e.value.status_code == 401 and e.value.error.code == "InvalidAuthenticationTokenAudience"


def test_missing_or_forged_token_is_401(stack, apim):
    r = raw(stack, "GET", "", token=False)
    assert r.status_code == 401 and r.json()["error"]["code"] == "AuthenticationFailed"
    assert r.headers["WWW-Authenticate"].startswith("Bearer ")
    forged = TokenIssuer().issue("https://management.azure.com", "intruder")[0]
    r = raw(stack, "GET", "", token=False, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
    expired = stack.issuer.issue("https://management.azure.com", "late", lifetime=-60)[0]
    r = raw(stack, "GET", "", token=False, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "ExpiredAuthenticationToken"
    r = raw(stack, "GET", "", token=False, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert r.status_code == 401 and r.json()["error"]["code"] == "AuthenticationFailedInvalidHeader"


def test_wrong_or_missing_api_version_is_400(stack, apim):
    old = client(stack, api_version="2022-08-01")
    with pytest.raises(HttpResponseError) as e:
        old.api_management_service.get(RG, SVC)
    assert e.value.status_code == 400 and e.value.error.code == "InvalidApiVersionParameter"
    r = raw(stack, "GET", "", api_version=None)
    assert r.status_code == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"


def test_missing_if_match_on_delete_and_patch(stack, mgmt):
    mgmt.authorization_server.create_or_update(RG, SVC, "cust-a", server())
    for method, body in (("PATCH", {"properties": {"displayName": "x"}}), ("DELETE", None)):
        r = raw(stack, method, "/authorizationServers/cust-a", body=body)
        assert r.status_code == 400 and r.json()["error"]["details"][0]["target"] == "If-Match"
    stack.ctl.config(if_match_required=False)  # what the live service tolerates on DELETE
    assert raw(stack, "DELETE", "/authorizationServers/cust-a").status_code == 200


def test_missing_or_malformed_body_is_400(stack, apim):
    for body in (None, b"{not json", b"[]"):
        r = raw(stack, "PUT", "/authorizationServers/cust-a", headers={"Content-Type": "application/json"},
                body=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidRequestContent"


# -- faults and persistence ------------------------------------------------------------------------
def test_scripted_503_is_retried_by_default_and_surfaces_without_retries(stack, mgmt):
    mgmt.authorization_server.create_or_update(RG, SVC, "cust-a", server())
    stack.ctl.fail_next("authorization_servers.get", 503)
    assert mgmt.authorization_server.get(RG, SVC, "cust-a").name == "cust-a"
    assert stack.ctl.calls()["injected"] == {"authorization_servers.get:503": 1}
    stack.ctl.fail_next("authorization_servers.get", 503)
    with pytest.raises(HttpResponseError) as e:
        client(stack, retry_total=0).authorization_server.get(RG, SVC, "cust-a")
    assert e.value.status_code == 503


def test_state_survives_a_restart(stack, mgmt, tmp_path):
    _, _, headers = mgmt.authorization_server.create_or_update(RG, SVC, "cust-a", server(), cls=status_body_headers)
    mgmt.subscription.create_or_update(RG, SVC, "sub-a", SubscriptionCreateParameters(scope="/apis", display_name="A"))
    keys = mgmt.subscription.list_secrets(RG, SVC, "sub-a")
    state_file = tmp_path / "apim.json"
    state_file.write_text(json.dumps(stack.apim.dump_state()))
    again = ApimStandIn(stack.issuer, tls=stack.tls, state_file=state_file).start()
    try:
        mgmt2 = ApiManagementClient(stack.credential, again.subscription_id, base_url=again.url,
                                    connection_verify=str(stack.tls.ca_cert))
        _, _, headers2 = mgmt2.authorization_server.get(RG, SVC, "cust-a", cls=status_body_headers)
        assert headers2["ETag"] == headers["ETag"]
        assert mgmt2.subscription.list_secrets(RG, SVC, "sub-a").primary_key == keys.primary_key
        mgmt2.authorization_server.create_or_update(RG, SVC, "cust-b", server())
        assert "cust-b" in json.loads(state_file.read_text())["authorizationServers"]
    finally:
        again.stop()
    stack.ctl.reset()
    assert stack.ctl.state()["authorizationServers"] == {}
    assert set(stack.ctl.state()["products"]) == {"oem", "partners"}
