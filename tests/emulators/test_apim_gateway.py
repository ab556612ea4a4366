"""The local API Management gateway: subscription keys, each validate-jwt check, the customer binding (the client
and, for a customer that is an Auth0 Organization, its organization), scopes per operation, rate limiting, key
rotation at the gateway, and the refusal to load a policy it does not implement. The stand-ins are reached as
clients reach them: Auth0's Management API and token endpoint, ARM for subscriptions."""
from __future__ import annotations

import ssl
import time
import uuid

import httpx
import jwt
import pytest

from emulators.apim_gateway import GatewayStandIn, PolicyError
from emulators.apim_gateway.policy import parse_policy
from emulators.auth0_signing import SigningKeys, client_credentials_claims
from emulators.stack import API_AUDIENCE, LocalStack, StackOptions

pytestmark = pytest.mark.timeout(90)
MISSING = "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."
INVALID = "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."
UNAUTHORIZED = "Unauthorized. Access token is missing or invalid."


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = LocalStack(tmp_path_factory.mktemp("gw"), StackOptions(azurite=False, servicebus=False)).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(verify=ssl.create_default_context(cafile=str(stack.tls.ca_cert)), timeout=20) as client:
        yield client


def _admin(http, stack) -> dict:
    cid, secret = stack.admin_credentials
    got = http.post(f"{stack.auth0.url}/oauth/token", data={"grant_type": "client_credentials", "client_id": cid,
                                                           "client_secret": secret,
                                                           "audience": stack.auth0.management_audience})
    return {"Authorization": f"Bearer {got.json()['access_token']}"}


def _arm(stack, method: str, path: str, http, body=None) -> httpx.Response:
    token = stack.apim.issuer.issue("https://management.azure.com/", "gateway-test")[0]
    return http.request(method, f"{stack.apim.url}{stack.apim.service_id}{path}?api-version=2024-05-01",
                        json=body, headers={"Authorization": f"Bearer {token}", "If-Match": "*"})


class Customer:
    """A provisioned customer, made as the app makes one: Auth0 client and grant, APIM subscription; with
    ``organization``, an Auth0 Organization too, the grant associated with it (``organization_usage``), and the
    subscription's display name recording it after the client id."""

    def __init__(self, http, stack, scopes=("read:data",), state="active", display=None, organization=False,
                 usage="require"):
        self.http, self.stack = http, stack
        self.sid = f"customer-{uuid.uuid4().hex[:8]}"
        admin = _admin(http, stack)
        client = http.post(f"{stack.auth0.url}/api/v2/clients", headers=admin, json={
            "name": self.sid, "app_type": "non_interactive", "grant_types": ["client_credentials"],
            "is_first_party": False}).json()
        self.client_id, self.secret = client["client_id"], client["client_secret"]
        grant = {"client_id": self.client_id, "audience": API_AUDIENCE, "scope": list(scopes)}
        if organization:
            grant["organization_usage"] = usage
        created = http.post(f"{stack.auth0.url}/api/v2/client-grants", headers=admin, json=grant)
        assert created.status_code == 201
        self.grant_id = created.json()["id"]
        self.org_id = None
        if organization:
            org = http.post(f"{stack.auth0.url}/api/v2/organizations", headers=admin, json={"name": self.sid})
            self.org_id = org.json()["id"]
            self.associate(self.org_id)
        recorded = display or " ".join(filter(None, (self.client_id, self.org_id)))
        assert _arm(stack, "PUT", f"/subscriptions/{self.sid}", http, {"properties": {
            "scope": "/products/oem", "displayName": recorded, "state": state}}).status_code == 201
        self.key = _arm(stack, "POST", f"/subscriptions/{self.sid}/listSecrets", http).json()["primaryKey"]

    def associate(self, org_id: str) -> None:
        assert self.http.post(f"{self.stack.auth0.url}/api/v2/organizations/{org_id}/client-grants",
                              headers=_admin(self.http, self.stack),
                              json={"grant_id": self.grant_id}).status_code == 201

    def token(self, organization: str | None = "own") -> str:
        """A token for this customer's client: for its own organization (if it has one), another one, or with
        ``organization=None`` for none."""
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.secret,
                "audience": API_AUDIENCE}
        organization = self.org_id if organization == "own" else organization
        if organization:
            form["organization"] = organization
        answer = self.http.post(f"{self.stack.auth0.url}/oauth/token", data=form)
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]


def call(http, stack, *, key=None, token=None, method="GET", path="/api/items", gateway=None, **headers):
    if key is not None:
        headers["Ocp-Apim-Subscription-Key"] = key
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return http.request(method, f"{(gateway or stack.gateway).url}{path}", headers=headers)


def test_subscription_keys_header_query_missing_invalid_and_not_active(http, stack):
    acme = Customer(http, stack)
    token = acme.token()
    assert call(http, stack, key=acme.key, token=token).status_code == 200
    assert call(http, stack, token=token, path=f"/api/items?subscription-key={acme.key}").status_code == 200
    missing = call(http, stack, token=token)
    assert (missing.status_code, missing.json()) == (401, {"statusCode": 401, "message": MISSING})
    invalid = call(http, stack, key="0" * 32, token=token)
    assert (invalid.status_code, invalid.json()) == (401, {"statusCode": 401, "message": INVALID})
    for state in ("suspended", "cancelled"):
        assert _arm(stack, "PATCH", f"/subscriptions/{acme.sid}", http,
                    {"properties": {"state": state}}).status_code == 200
        refused = call(http, stack, key=acme.key, token=token)
        assert (refused.status_code, refused.json()["message"]) == (401, INVALID)
    assert call(http, stack, path="/nowhere").json() == {"statusCode": 404, "message": "Resource not found"}


def test_each_token_check_fails_with_the_policys_answer(http, stack):
    acme = Customer(http, stack)
    good = jwt.decode(acme.token(), options={"verify_signature": False})

    def signed(keys=None, **changes) -> str:
        claims = {**good, **changes}
        signer = keys or stack.auth0.signing
        return signer.sign(claims)

    cases = {
        "no token": None,
        "expired": signed(exp=int(time.time()) - 5),
        "wrong audience": signed(aud="https://other.example/"),
        "wrong issuer": signed(iss="https://evil.example/"),
        "a stranger's key": SigningKeys().sign(good),
        "unsigned": jwt.encode(good, None, algorithm="none"),
        "not a JWT": "abc.def",
    }
    for what, token in cases.items():
        answer = call(http, stack, key=acme.key, token=token)
        assert (answer.status_code, answer.json()) == (401, {"statusCode": 401, "message": UNAUTHORIZED}), what
    basic = call(http, stack, key=acme.key, Authorization=f"Basic {acme.token()}")
    assert basic.status_code == 401  # require-scheme="Bearer"
    assert call(http, stack, key=acme.key, token=signed()).status_code == 200


def test_binding_and_scopes(http, stack):
    reader, writer = Customer(http, stack), Customer(http, stack, scopes=("read:data", "write:data"))
    crossed = call(http, stack, key=reader.key, token=writer.token(), method="POST")
    assert crossed.status_code == 403 and "not issued to the customer" in crossed.json()["message"]
    denied = call(http, stack, key=reader.key, token=reader.token(), method="DELETE", path="/api/items/1")
    assert denied.json() == {"statusCode": 403,
                             "message": "Forbidden. The access token does not grant the scope write:data."}
    ok = call(http, stack, key=writer.key, token=writer.token(), method="PATCH", path="/api/items/1?x=1")
    assert ok.status_code == 200
    assert ok.json()["path"] == "/items/1" and ok.json()["query"] == {"x": ["1"]}
    assert ok.json()["caller"] == {"subscription": writer.sid, "client_id": writer.client_id,
                                   "scopes": ["read:data", "write:data"]}
    # A subscription the app did not name (a developer-portal one) is refused even when displayed as the client.
    stray = Customer(http, stack)
    _arm(stack, "PUT", "/subscriptions/portal-1", http, {"properties": {
        "scope": "/products/oem", "displayName": stray.client_id, "state": "active"}})
    portal_key = _arm(stack, "POST", "/subscriptions/portal-1/listSecrets", http).json()["primaryKey"]
    assert call(http, stack, key=portal_key, token=stray.token()).status_code == 403


def test_an_organizations_token_works_only_with_the_key_that_records_its_organization(http, stack):
    acme, globex = Customer(http, stack, organization=True), Customer(http, stack, organization=True)
    plain = Customer(http, stack)
    ok = call(http, stack, key=acme.key, token=acme.token())
    assert ok.status_code == 200
    assert ok.json()["caller"] == {"subscription": acme.sid, "client_id": acme.client_id, "scopes": ["read:data"],
                                   "organization": acme.org_id}
    refused = "The access token was not issued to the customer of this subscription key."
    assert call(http, stack, key=acme.key, token=globex.token()).json() == {"statusCode": 403, "message": refused}
    assert call(http, stack, key=globex.key, token=acme.token()).status_code == 403
    assert call(http, stack, key=plain.key, token=acme.token()).status_code == 403

    # An association made by mistake (acme's grant also on globex's organization): Auth0 issues acme's client a
    # token for globex, which names acme's client; the key records acme's organization, so the gateway refuses it.
    acme.associate(globex.org_id)
    crossed = acme.token(organization=globex.org_id)
    assert jwt.decode(crossed, options={"verify_signature": False})["azp"] == acme.client_id
    assert call(http, stack, key=acme.key, token=crossed).status_code == 403
    # A customer without an organization whose grant is associated with one: its token for that organization does
    # not pass with its own key either, because that key records no organization.
    plain_grant = http.patch(f"{stack.auth0.url}/api/v2/client-grants/{plain.grant_id}",
                             headers=_admin(http, stack), json={"organization_usage": "allow"})
    assert plain_grant.status_code == 200
    plain.associate(acme.org_id)
    assert call(http, stack, key=plain.key, token=plain.token(organization=acme.org_id)).status_code == 403
    assert call(http, stack, key=plain.key, token=plain.token(organization=None)).status_code == 200


def test_a_key_that_records_an_organization_refuses_a_token_without_it(http, stack):
    # organization_usage "allow" lets the client ask for a token without the organization.
    acme = Customer(http, stack, organization=True, usage="allow")
    without = acme.token(organization=None)
    assert "org_id" not in jwt.decode(without, options={"verify_signature": False})
    assert call(http, stack, key=acme.key, token=without).status_code == 403
    assert call(http, stack, key=acme.key, token=acme.token()).status_code == 200


def test_the_organization_header_cannot_be_sent_by_the_caller(http, stack):
    plain = Customer(http, stack)
    answer = call(http, stack, key=plain.key, token=plain.token(), **{"X-Customer-Organization": "org_forged"})
    assert answer.status_code == 200 and "organization" not in answer.json()["caller"]


def test_rate_limit_per_customer_answers_429_with_retry_after(http, stack):
    gateway = GatewayStandIn(stack.apim, backend_url=stack.backend.url, ca_bundle=str(stack.tls.ca_cert),
                             named_values={**stack.named_values, "customer-rate-limit-calls": "2",
                                           "customer-rate-limit-period": "30"}, tls=stack.tls).start()
    try:
        busy, other = Customer(http, stack), Customer(http, stack)
        token = busy.token()
        assert [call(http, stack, key=busy.key, token=token, gateway=gateway).status_code for _ in range(2)] == [200,
                                                                                                                 200]
        limited = call(http, stack, key=busy.key, token=token, gateway=gateway)
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 30
        assert limited.json()["message"].startswith("Rate limit is exceeded")
        assert call(http, stack, key=other.key, token=other.token(), gateway=gateway).status_code == 200
    finally:
        gateway.stop()


def test_a_rotated_signing_key_is_accepted_and_a_revoked_one_refused_once_the_gateway_refreshes(http, stack):
    acme = Customer(http, stack)
    before = acme.token()
    assert call(http, stack, key=acme.key, token=before).status_code == 200
    old_kid = stack.auth0.signing.current.kid
    admin = _admin(http, stack)
    assert http.post(f"{stack.auth0.url}/api/v2/keys/signing/rotate", headers=admin).status_code == 201
    after = acme.token()
    # The new current key was published as the next one: accepted without a refetch.
    assert call(http, stack, key=acme.key, token=after).status_code == 200
    assert http.put(f"{stack.auth0.url}/api/v2/keys/signing/{old_kid}/revoke", headers=admin).status_code == 200
    # Until the gateway refreshes its copy (hourly in Azure) the revoked key's tokens still pass.
    assert call(http, stack, key=acme.key, token=before).status_code == 200
    stack.control("gateway").config(openid_refresh_seconds=0)
    try:
        assert call(http, stack, key=acme.key, token=before).status_code == 401
        assert call(http, stack, key=acme.key, token=after).status_code == 200
    finally:
        stack.control("gateway").config(openid_refresh_seconds=3600)


@pytest.mark.parametrize("inbound, complaint", [
    ("<ip-filter action='allow'><address>1.2.3.4</address></ip-filter>", "does not implement the policy <ip-filter>"),
    ("<set-header name='X' exists-action='override' bogus='1'><value>v</value></set-header>", "not implemented: bogus"),
    ("<set-header name='X'><value>@(context.Request.IpAddress)</value></set-header>",
     "does not implement the policy expression"),
    ("<set-header name='X'><value>@{ return 1; }</value></set-header>", "multi-statement"),
    ("<set-header name='X'><value>{{nowhere}}</value></set-header>", "named value {{nowhere}}"),
    ("<forward-request />", "not allowed in the inbound section"),
    ("<rate-limit-by-key calls='1' renewal-period='900' counter-key='k' />", "at most 300"),
])
def test_a_policy_it_does_not_implement_is_refused_at_load(inbound, complaint):
    with pytest.raises(PolicyError, match=complaint.replace("{", r"\{").replace("}", r"\}")):
        parse_policy(f"<policies><inbound><base />{inbound}</inbound></policies>", {"known": "x"})


def test_the_stacks_policies_load_and_name_only_defined_values(stack):
    assert [op.id for op in stack.gateway.api.operations] == ["read", "create", "replace", "update", "delete"]
    with pytest.raises(PolicyError, match="named value"):
        GatewayStandIn(stack.apim, backend_url=stack.backend.url, named_values={"auth0-domain": "x"}, tls=stack.tls)


def test_an_unsigned_claims_helper_matches_auth0s_shape():
    claims = client_credentials_claims(issuer="https://t.example/", client_id="abc", audience="https://api/",
                                       scope=["a", "b"], lifetime=60, now=1000)
    assert claims == {"iss": "https://t.example/", "sub": "abc@clients", "aud": "https://api/", "iat": 1000,
                      "exp": 1060, "scope": "a b", "gty": "client-credentials", "azp": "abc"}
