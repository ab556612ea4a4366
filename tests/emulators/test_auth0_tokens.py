"""The Auth0 stand-in's tokens, checked the way a resource server checks them: PyJWT's PyJWKClient against the
tenant's published JWKS, Auth0's issuer and claims; signing-key rotation and revocation through the real
auth0-python Management client; refusals of a rotated-away secret and of a deleted application; resource servers."""
from __future__ import annotations

import ssl

import httpx
import jwt
import pytest
from auth0.management import ManagementClient
from auth0.management.errors import UnauthorizedError

from emulators.control import StandInControl

pytestmark = pytest.mark.timeout(60)
API = "https://api.contoso.local/"
NO_RETRY = {"max_retries": 0}


@pytest.fixture
def standin(auth0_server, tls):
    StandInControl(auth0_server.url, verify=str(tls.ca_cert)).reset()
    return auth0_server


@pytest.fixture
def http(tls):
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_cert))) as client:
        yield client


def token(http, standin, client_id=None, secret=None, audience=None) -> httpx.Response:
    return http.post(f"{standin.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id or standin.management_client_id,
        "client_secret": secret or standin.management_client_secret,
        "audience": audience or standin.management_audience})


def mgmt(http, standin, tls) -> ManagementClient:
    access = token(http, standin).json()["access_token"]
    return ManagementClient(domain=standin.domain, token=access,
                            httpx_client=httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_cert))))


def customer_client(m: ManagementClient, scope=("read:data",)):
    client = m.clients.create(name="Acme", app_type="non_interactive", grant_types=["client_credentials"],
                              is_first_party=False, request_options=NO_RETRY)
    m.client_grants.create(client_id=client.client_id, audience=API, scope=list(scope), request_options=NO_RETRY)
    return client


def jwks_client(standin, tls) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(f"{standin.url}/.well-known/jwks.json", cache_keys=False, cache_jwk_set=False,
                           ssl_context=ssl.create_default_context(cafile=str(tls.ca_cert)))


def as_resource_server(raw: str, standin, tls, audience: str = API) -> dict:
    key = jwks_client(standin, tls).get_signing_key_from_jwt(raw)
    return jwt.decode(raw, key.key, algorithms=["RS256"], audience=audience, issuer=f"https://{standin.domain}/")


def test_discovery_documents_name_the_issuer_keys_and_token_endpoint(http, standin):
    config = http.get(f"{standin.url}/.well-known/openid-configuration").json()
    assert config["issuer"] == f"https://{standin.domain}/"  # Auth0's issuer ends with a slash
    assert config["jwks_uri"] == f"https://{standin.domain}/.well-known/jwks.json"
    assert config["token_endpoint"] == f"https://{standin.domain}/oauth/token"
    keys = http.get(config["jwks_uri"]).json()["keys"]
    assert len(keys) == 2  # the current key and the next one, always both
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["use"] == "sig" and k["kid"] and k["x5c"]
               for k in keys)


def test_client_credentials_token_has_auth0s_shape_and_validates_against_the_jwks(http, standin, tls):
    client = customer_client(mgmt(http, standin, tls), scope=("read:data", "write:data"))
    answer = token(http, standin, client.client_id, client.client_secret, API)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "read:data write:data" and body["expires_in"] > 0
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256" and header["kid"] == standin.signing.current.kid
    claims = as_resource_server(body["access_token"], standin, tls)
    assert set(claims) == {"iss", "sub", "aud", "iat", "exp", "scope", "gty", "azp"}
    assert claims["iss"] == f"https://{standin.domain}/" and claims["aud"] == API
    assert claims["sub"] == f"{client.client_id}@clients" and claims["azp"] == client.client_id
    assert claims["gty"] == "client-credentials" and claims["scope"] == "read:data write:data"
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    with pytest.raises(jwt.InvalidAudienceError):
        as_resource_server(body["access_token"], standin, tls, audience="https://other.example/")


def test_management_api_tokens_take_the_same_shape(http, standin, tls):
    raw = token(http, standin).json()["access_token"]
    claims = as_resource_server(raw, standin, tls, audience=standin.management_audience)
    assert claims["sub"] == f"{standin.management_client_id}@clients" and claims["gty"] == "client-credentials"
    assert "read:clients" in claims["scope"].split()


def test_rotation_publishes_both_keys_and_revocation_retires_the_old_one(http, standin, tls):
    m = mgmt(http, standin, tls)
    client = customer_client(m)
    before = token(http, standin, client.client_id, client.client_secret, API).json()["access_token"]
    old_kid, next_kid = standin.signing.current.kid, standin.signing.next.kid
    listed = {k.kid: k for k in m.keys.signing.list()}
    assert listed[old_kid].current and listed[next_kid].next

    rotated = m.keys.signing.rotate()
    assert rotated.kid not in (old_kid, next_kid)  # the answer names the new next key
    after = token(http, standin, client.client_id, client.client_secret, API).json()["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == next_kid  # the published next key signs now
    kids = [k["kid"] for k in http.get(f"{standin.url}/.well-known/jwks.json").json()["keys"]]
    assert set(kids) == {old_kid, next_kid, rotated.kid}
    # Until it is revoked, tokens signed with the previous key stay valid, for resource servers and for Auth0.
    assert as_resource_server(before, standin, tls)["azp"] == client.client_id
    assert as_resource_server(after, standin, tls)["azp"] == client.client_id

    m.keys.signing.revoke(old_kid)
    kids = [k["kid"] for k in http.get(f"{standin.url}/.well-known/jwks.json").json()["keys"]]
    assert old_kid not in kids
    with pytest.raises(jwt.PyJWKClientError):
        as_resource_server(before, standin, tls)
    with pytest.raises(UnauthorizedError):  # a Management API token signed with the revoked key
        ManagementClient(domain=standin.domain, token=_management_token_signed_by(standin, old_kid),
                         httpx_client=httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_cert)))
                         ).clients.list(request_options=NO_RETRY)


def _management_token_signed_by(standin, kid: str) -> str:
    from emulators.auth0_signing import client_credentials_claims

    key = next(k for k in standin.signing.revoked if k.kid == kid)
    claims = client_credentials_claims(issuer=standin.issuer_url, client_id="x", audience=standin.management_audience,
                                       scope=["read:clients"], lifetime=600)
    return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": kid})


def test_a_rotated_away_secret_and_a_deleted_application_are_refused(http, standin, tls):
    m = mgmt(http, standin, tls)
    client = customer_client(m)
    m.clients.rotate_secret(client.client_id, request_options=NO_RETRY)
    refused = token(http, standin, client.client_id, client.client_secret, API)
    assert refused.status_code == 401
    assert refused.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    fresh = m.clients.get(client.client_id).client_secret
    assert token(http, standin, client.client_id, fresh, API).status_code == 200
    m.clients.delete(client.client_id, request_options=NO_RETRY)
    gone = token(http, standin, client.client_id, fresh, API)
    assert gone.status_code == 401 and gone.json()["error"] == "access_denied"


def test_resource_servers_through_the_management_api(http, standin, tls):
    from auth0.management.errors import ConflictError
    from auth0.management.types import ResourceServerScope

    m = mgmt(http, standin, tls)
    identifiers = [r.identifier for r in m.resource_servers.list()]
    assert API in identifiers and standin.management_audience in identifiers
    created = m.resource_servers.create(identifier="https://reports.example/", name="Reports",
                                        scopes=[ResourceServerScope(value="read:reports", description="Read")],
                                        request_options=NO_RETRY)
    assert created.signing_alg == "RS256" and created.token_lifetime == 86400
    with pytest.raises(ConflictError):
        m.resource_servers.create(identifier="https://reports.example/", request_options=NO_RETRY)
    got = m.resource_servers.get("https://reports.example/")  # by identifier, as the API allows
    assert got.id == created.id
    m.resource_servers.update(created.id, scopes=[ResourceServerScope(value="read:reports"),
                                                  ResourceServerScope(value="write:reports")],
                              request_options=NO_RETRY)
    assert [s.value for s in m.resource_servers.get(created.id).scopes] == ["read:reports", "write:reports"]
    assert standin.apis["https://reports.example/"] == ["read:reports", "write:reports"]
