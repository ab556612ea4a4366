"""The Auth0 stand-in driven by the real auth0-python 6.x ManagementClient over TLS."""
from __future__ import annotations

import re
import ssl
import time

import httpx
import pytest
from auth0.management import ManagementClient
from auth0.management.core.api_error import ApiError
from auth0.management.errors import (BadRequestError, ConflictError, ForbiddenError, NotFoundError,
                                     TooManyRequestsError, UnauthorizedError)

from emulators.auth0 import MANAGEMENT_SCOPES, Auth0StandIn
from emulators.control import StandInControl
from emulators.auth0_signing import SigningKeys, client_credentials_claims

pytestmark = pytest.mark.timeout(60)

API = "https://api.contoso.local/"
NO_RETRY = {"max_retries": 0}


@pytest.fixture
def standin(auth0_server, tls):
    # One server per module; every test starts from an empty tenant, no faults and the default rate limit.
    StandInControl(auth0_server.url, verify=str(tls.ca_cert)).reset()
    auth0_server.set_config({"rate": 50, "burst": 100})
    return auth0_server


def trusting(tls) -> httpx.Client:
    # httpx 0.28 deprecates verify=<path>; an SSLContext is the supported form.
    return httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_cert)))


@pytest.fixture
def http(tls):
    with trusting(tls) as client:
        yield client


@pytest.fixture
def ctl(standin, tls):
    return StandInControl(standin.url, verify=str(tls.ca_cert))


def get_token(http, standin, client_id=None, secret=None, audience=None, form=False, **extra):
    body = {"grant_type": "client_credentials", "client_id": client_id or standin.management_client_id,
            "client_secret": secret or standin.management_client_secret,
            "audience": audience or standin.management_audience, **extra}
    if form:
        return http.post(f"{standin.url}/oauth/token", data=body)
    return http.post(f"{standin.url}/oauth/token", json=body)


@pytest.fixture
def mgmt(standin, http, tls):
    token = get_token(http, standin).json()["access_token"]
    return ManagementClient(domain=standin.domain, token=token, httpx_client=trusting(tls))


def make_client(mgmt, name="app", **kw):
    return mgmt.clients.create(name=name, request_options=NO_RETRY, **kw)


# -- /oauth/token ----------------------------------------------------------------------------------------------------
def test_token_json_and_form(http, standin):
    for form in (False, True):
        resp = get_token(http, standin, form=form)
        assert resp.status_code == 200
        body = resp.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 86400
        assert set(body["scope"].split()) == set(MANAGEMENT_SCOPES)
        assert resp.headers["x-ratelimit-limit"] == "100"


def test_sdk_token_provider_with_client_credentials(standin, tls, monkeypatch):
    # The SDK's TokenProvider opens its own httpx.Client(); httpx 0.28 trusts SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_cert))
    mgmt = ManagementClient(domain=standin.domain, client_id=standin.management_client_id,
                            client_secret=standin.management_client_secret)
    created = mgmt.clients.create(name="via provider", request_options=NO_RETRY)
    assert mgmt.clients.get(created.client_id).name == "via provider"
    assert standin.faults.calls["oauth.token"] == 1  # cached between calls

    bad = ManagementClient(domain=standin.domain, client_id=standin.management_client_id, client_secret="nope")
    with pytest.raises(httpx.HTTPStatusError) as exc:
        bad.clients.get(created.client_id)
    assert exc.value.response.status_code == 401


def test_token_wrong_secret_and_unknown_client(http, standin):
    for cid, secret in ((None, "wrong"), ("unknown-client", "x")):
        resp = get_token(http, standin, client_id=cid, secret=secret)
        assert resp.status_code == 401
        assert resp.json() == {"error": "access_denied", "error_description": "Unauthorized"}


def test_token_wrong_audience_and_missing_parameters(http, standin):
    resp = get_token(http, standin, audience="https://elsewhere/api/v2/")
    assert resp.status_code == 403
    assert resp.json() == {"error": "access_denied",
                           "error_description": "Service not enabled within domain: https://elsewhere/api/v2/"}
    resp = http.post(f"{standin.url}/oauth/token", json={"client_id": "x"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    resp = get_token(http, standin, grant_type="password")
    assert resp.status_code == 400 and resp.json()["error"] == "unsupported_grant_type"


def test_token_for_an_api_needs_a_client_grant(http, standin, mgmt):
    m2m = make_client(mgmt, app_type="non_interactive")
    resp = get_token(http, standin, m2m.client_id, m2m.client_secret, audience=API)
    assert resp.status_code == 403 and "You need to create a \"client-grant\"" in resp.json()["error_description"]
    # Not a machine-to-machine client either: client_credentials is not among its grant types.
    spa = make_client(mgmt, app_type="regular_web", grant_types=["authorization_code"])
    resp = get_token(http, standin, spa.client_id, spa.client_secret, audience=API)
    assert resp.status_code == 403 and resp.json()["error"] == "unauthorized_client"

    mgmt.client_grants.create(client_id=m2m.client_id, audience=API, scope=["read:data"], request_options=NO_RETRY)
    resp = get_token(http, standin, m2m.client_id, m2m.client_secret, audience=API)
    assert resp.status_code == 200 and resp.json()["scope"] == "read:data"
    # Not a management token.
    with pytest.raises(UnauthorizedError):
        ManagementClient(domain=standin.domain, token=resp.json()["access_token"],
                         httpx_client=trusting(standin.tls)).clients.list()


# -- authentication of /api/v2 --------------------------------------------------------------------------------------
def mint(keys: SigningKeys, standin, audience: str | None = None, scope: str = " ".join(MANAGEMENT_SCOPES),
         lifetime: int = 3600) -> str:
    """A token with Auth0's claims, signed by ``keys`` (the stand-in's own, or a stranger's)."""
    return keys.sign(client_credentials_claims(issuer=standin.issuer_url, client_id="x", lifetime=lifetime,
                                               audience=audience or standin.management_audience,
                                               scope=scope.split()))


def test_api_requires_a_valid_bearer_token(http, standin, tls):
    resp = http.get(f"{standin.url}/api/v2/clients")
    assert resp.status_code == 401
    assert resp.json() == {"statusCode": 401, "error": "Unauthorized", "message": "Missing authentication",
                           "errorCode": "missing_authentication"}
    assert "x-ratelimit-remaining" in resp.headers

    def sdk(token):
        return ManagementClient(domain=standin.domain, token=token, httpx_client=trusting(tls))

    with pytest.raises(UnauthorizedError) as exc:
        sdk("not-a-jwt").clients.list(request_options=NO_RETRY)
    assert exc.value.body["message"] == "Invalid token"
    expired = mint(standin.signing, standin, lifetime=-60)
    with pytest.raises(UnauthorizedError) as exc:
        sdk(expired).clients.list(request_options=NO_RETRY)
    assert exc.value.body["message"] == "Expired token received for JSON Web Token validation"
    other = mint(standin.signing, standin, audience="https://vault.azure.net")
    with pytest.raises(UnauthorizedError) as exc:
        sdk(other).clients.list(request_options=NO_RETRY)
    assert exc.value.body["message"].startswith("Bad audience")
    forged = mint(SigningKeys(), standin)
    with pytest.raises(UnauthorizedError):
        sdk(forged).clients.list(request_options=NO_RETRY)


def test_insufficient_scope(standin, tls):
    token = mint(standin.signing, standin, scope="read:clients")
    mgmt = ManagementClient(domain=standin.domain, token=token, httpx_client=trusting(tls))
    listed = list(mgmt.clients.list(request_options=NO_RETRY))
    assert listed and all(c.client_secret is None for c in listed)  # secrets need read:client_keys
    with pytest.raises(ForbiddenError) as exc:
        mgmt.clients.create(name="x", request_options=NO_RETRY)
    assert exc.value.body == {"statusCode": 403, "error": "Forbidden", "errorCode": "insufficient_scope",
                              "message": "Insufficient scope, expected any of: create:clients"}


# -- clients ---------------------------------------------------------------------------------------------------------
def test_create_first_party_third_party_and_public_clients(mgmt):
    raw = mgmt.clients.with_raw_response.create(name="Contoso web", app_type="regular_web",
                                                client_metadata={"customer": "c-1"}, request_options=NO_RETRY)
    assert raw.status_code == 201
    first = raw.data
    assert re.fullmatch(r"[A-Za-z0-9]{32}", first.client_id)
    assert len(first.client_secret) == 64 and first.is_first_party is True
    assert first.client_metadata == {"customer": "c-1"}

    third = make_client(mgmt, "OEM", is_first_party=False, app_type="non_interactive",
                        grant_types=["client_credentials"])
    assert re.fullmatch(r"tpc_[A-Za-z0-9]{32}", third.client_id)
    assert third.is_first_party is False and len(third.client_secret) == 64

    public = make_client(mgmt, "SPA", app_type="spa", token_endpoint_auth_method="none")
    assert public.client_secret is None and "client_credentials" not in public.grant_types


def test_get_with_fields(mgmt):
    created = make_client(mgmt, "fields", app_type="regular_web")
    only = mgmt.clients.get(created.client_id, fields="name,app_type", include_fields=True)
    assert only.name == "fields" and only.app_type == "regular_web" and only.client_id is None
    without = mgmt.clients.get(created.client_id, fields="client_secret", include_fields=False)
    assert without.client_secret is None and without.name == "fields"
    assert mgmt.clients.get(created.client_id).client_secret == created.client_secret


def test_list_pages_totals_and_filters(mgmt, http, standin):
    for i in range(4):
        make_client(mgmt, f"first-{i}", app_type="regular_web")
    for i in range(3):
        make_client(mgmt, f"third-{i}", is_first_party=False, app_type="spa", token_endpoint_auth_method="none")

    pager = mgmt.clients.list(per_page=3, include_totals=True)
    assert pager.response.total == 8 and pager.response.limit == 3  # 7 + the management client
    pages = [[c.name for c in p.items] for p in pager.iter_pages()]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert sum(pages, [])[1:] == [f"first-{i}" for i in range(4)] + [f"third-{i}" for i in range(3)]

    third = [c.client_id for c in mgmt.clients.list(per_page=2, is_first_party=False)]
    assert len(third) == 3 and all(cid.startswith("tpc_") for cid in third)
    by_type = mgmt.clients.list(app_type="spa,non_interactive", per_page=50, include_totals=True)
    assert by_type.response.total == 4  # 3 SPAs + the management client
    assert {c.app_type for c in by_type} == {"spa", "non_interactive"}

    with pytest.raises(BadRequestError) as exc:
        mgmt.clients.list(per_page=101, request_options=NO_RETRY)
    assert exc.value.body["errorCode"] == "invalid_query_string"
    assert "greater than maximum 100" in exc.value.body["message"]

    # include_totals=false answers a plain list (which the 6.x SDK cannot parse: auth0-python issue #856).
    headers = {"Authorization": f"Bearer {get_token(http, standin).json()['access_token']}"}
    plain = http.get(f"{standin.url}/api/v2/clients", params={"per_page": 2, "page": 1}, headers=headers)
    assert plain.status_code == 200 and isinstance(plain.json(), list) and len(plain.json()) == 2
    unknown = http.get(f"{standin.url}/api/v2/clients", params={"foo": "1"}, headers=headers)
    assert unknown.status_code == 400 and unknown.json()["errorCode"] == "invalid_query_string"


def test_update_client(mgmt):
    created = make_client(mgmt, "before", client_metadata={"a": "1", "b": "2"})
    updated = mgmt.clients.update(created.client_id, name="after", client_metadata={"b": None, "c": "3"},
                                  callbacks=["https://contoso.example/cb"], request_options=NO_RETRY)
    assert updated.name == "after" and updated.client_metadata == {"a": "1", "c": "3"}
    assert mgmt.clients.get(created.client_id).callbacks == ["https://contoso.example/cb"]
    assert updated.client_secret == created.client_secret
    with pytest.raises(NotFoundError):
        mgmt.clients.update("missing", name="x", request_options=NO_RETRY)


def test_delete_client_then_404_and_grants_go_too(mgmt, standin):
    created = make_client(mgmt, "gone", app_type="non_interactive")
    mgmt.client_grants.create(client_id=created.client_id, audience=API, scope=[], request_options=NO_RETRY)
    raw = mgmt.clients.with_raw_response.delete(created.client_id, request_options=NO_RETRY)
    assert raw.status_code == 204
    with pytest.raises(NotFoundError) as exc:
        mgmt.clients.get(created.client_id, request_options=NO_RETRY)
    assert exc.value.body == {"statusCode": 404, "error": "Not Found", "message": "The client does not exist",
                              "errorCode": "inexistent_client"}
    with pytest.raises(ApiError) as exc:  # the SDK maps only 400/401/403/429 to classes on delete
        mgmt.clients.delete(created.client_id, request_options=NO_RETRY)
    assert exc.value.status_code == 404
    assert [g for g in standin.dump_state()["client_grants"] if g["client_id"] == created.client_id] == []


def test_rotate_secret(mgmt, http, standin):
    created = make_client(mgmt, "rotate", app_type="non_interactive")
    mgmt.client_grants.create(client_id=created.client_id, audience=API, scope=["read:data"],
                              request_options=NO_RETRY)
    rotated = mgmt.clients.rotate_secret(created.client_id, request_options=NO_RETRY)
    assert rotated.client_secret != created.client_secret and len(rotated.client_secret) == 64
    assert get_token(http, standin, created.client_id, created.client_secret, audience=API).status_code == 401
    assert get_token(http, standin, created.client_id, rotated.client_secret, audience=API).status_code == 200
    with pytest.raises(NotFoundError):
        mgmt.clients.rotate_secret("missing", request_options=NO_RETRY)


def test_a_rotated_secret_propagates_after_the_configured_delay(mgmt, http, standin):
    """Auth0: new secrets may be delayed up to thirty seconds while rotating. The stand-in takes the old secret and
    refuses the new one during its propagation time, then the reverse; never both at once."""
    created = make_client(mgmt, "rotate-delay", app_type="non_interactive")
    mgmt.client_grants.create(client_id=created.client_id, audience=API, scope=["read:data"],
                              request_options=NO_RETRY)
    standin.set_config({"secret_propagation_seconds": 3600})
    try:
        rotated = mgmt.clients.rotate_secret(created.client_id, request_options=NO_RETRY)
        assert get_token(http, standin, created.client_id, created.client_secret, audience=API).status_code == 200
        assert get_token(http, standin, created.client_id, rotated.client_secret, audience=API).status_code == 401
        # a second rotation within the window: the secret that still works is what the next one replaces
        again = mgmt.clients.rotate_secret(created.client_id, request_options=NO_RETRY)
        assert get_token(http, standin, created.client_id, created.client_secret, audience=API).status_code == 200
        standin.set_config({"secret_propagation_seconds": 0})  # the window has passed
        assert get_token(http, standin, created.client_id, created.client_secret, audience=API).status_code == 401
        assert get_token(http, standin, created.client_id, rotated.client_secret, audience=API).status_code == 401
        assert get_token(http, standin, created.client_id, again.client_secret, audience=API).status_code == 200
    finally:
        standin.set_config({"secret_propagation_seconds": 0})


# -- client grants ---------------------------------------------------------------------------------------------------
def test_client_grant_create_conflict_and_errors(mgmt, http, standin):
    c = make_client(mgmt, "m2m", app_type="non_interactive")
    raw = mgmt.client_grants.with_raw_response.create(client_id=c.client_id, audience=API, scope=["read:data"],
                                                      request_options=NO_RETRY)
    assert raw.status_code == 201 and raw.data.id.startswith("cgr_") and raw.data.scope == ["read:data"]
    with pytest.raises(ConflictError) as exc:
        mgmt.client_grants.create(client_id=c.client_id, audience=API, scope=["read:data"], request_options=NO_RETRY)
    assert exc.value.body == {"statusCode": 409, "error": "Conflict", "errorCode": "client_grant_conflict",
                              "message": "A client grant for this client and audience already exists."}
    with pytest.raises(NotFoundError) as exc:
        mgmt.client_grants.create(client_id="nope", audience=API, scope=[], request_options=NO_RETRY)
    assert exc.value.body["errorCode"] == "inexistent_client"
    with pytest.raises(NotFoundError) as exc:
        mgmt.client_grants.create(client_id=c.client_id, audience="https://unknown/", request_options=NO_RETRY)
    assert exc.value.body["message"] == "No resource with identifier https://unknown/"
    other = make_client(mgmt, "other", app_type="non_interactive")
    with pytest.raises(BadRequestError) as exc:
        mgmt.client_grants.create(client_id=other.client_id, audience=API, scope=["delete:everything"],
                                  request_options=NO_RETRY)
    assert exc.value.body["statusCode"] == 400 and "delete:everything" in exc.value.body["message"]
    oem = make_client(mgmt, "oem", is_first_party=False, app_type="non_interactive")
    with pytest.raises(BadRequestError):
        mgmt.client_grants.create(client_id=oem.client_id, audience=standin.management_audience,
                                  scope=["read:clients"], request_options=NO_RETRY)
    # A first-party client granted the Management API gets a management token with the granted scopes.
    mgmt.client_grants.create(client_id=other.client_id, audience=standin.management_audience,
                              scope=["read:clients"], request_options=NO_RETRY)
    token = get_token(http, standin, other.client_id, other.client_secret)
    assert token.status_code == 200 and token.json()["scope"] == "read:clients"


def test_client_grants_list_checkpoint_paging_and_delete(mgmt, http, standin):
    ids = []
    for i in range(5):
        c = make_client(mgmt, f"m2m-{i}", app_type="non_interactive")
        ids.append(mgmt.client_grants.create(client_id=c.client_id, audience=API, scope=["read:data"],
                                             request_options=NO_RETRY).id)
    pager = mgmt.client_grants.list(take=2, audience=API)
    pages = [[g.id for g in p.items] for p in pager.iter_pages()]
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    assert pager.response.next and list(pager.iter_pages())[-1].response.next is None
    assert [g.id for g in mgmt.client_grants.list(client_id=standin.grants[ids[3]]["client_id"])] == [ids[3]]

    headers = {"Authorization": f"Bearer {get_token(http, standin).json()['access_token']}"}
    paged = http.get(f"{standin.url}/api/v2/client-grants",
                     params={"page": 1, "per_page": 2, "include_totals": "true", "audience": API},
                     headers=headers).json()
    assert paged["total"] == 5 and paged["start"] == 2 and [g["id"] for g in paged["client_grants"]] == ids[2:4]
    bad = http.get(f"{standin.url}/api/v2/client-grants", params={"from": "garbage!", "take": 2}, headers=headers)
    assert bad.status_code == 400

    raw = mgmt.client_grants.with_raw_response.delete(ids[0], request_options=NO_RETRY)
    assert raw.status_code == 204
    with pytest.raises(ApiError) as exc:  # 404 is not in the spec's DELETE responses, so no NotFoundError
        mgmt.client_grants.delete(ids[0], request_options=NO_RETRY)
    assert exc.value.status_code == 404 and exc.value.body["errorCode"] == "inexistent_client_grant"
    assert [g.id for g in mgmt.client_grants.list(audience=API)] == ids[1:]


# -- validation ------------------------------------------------------------------------------------------------------
INVALID_CREATES = [
    (dict(name=""), "'String is too short (0 chars), minimum 1' on property name"),
    (dict(name="a<b"), "on property name"),
    (dict(name="x", client_metadata={f"k{i}": "v" for i in range(11)}), "Too many properties defined (11), maximum 10"),
    (dict(name="x", client_metadata={"k" * 256: "v"}), "String is too long (256 chars), maximum 255"),
    (dict(name="x", client_metadata={"k": "v" * 256}), "String is too long (256 chars), maximum 255"),
    (dict(name="x", client_metadata={"k": 1}), "Expected type string but found type integer"),
    (dict(name="x", app_type="mainframe"), 'No enum match for: "mainframe"'),
    (dict(name="x", token_endpoint_auth_method="private_key"), 'No enum match for: "private_key"'),
    (dict(name="x", callbacks=["not a url"]), "format callback-url: not a url' on property callbacks[0]"),
    (dict(name="x", callbacks=["https://a.example:99999/cb"]), "format callback-url: https://a.example:99999/cb"),
    (dict(name="x", grant_types=["client_credentials"], token_endpoint_auth_method="none"),
     "Invalid grant types: client_credentials"),
    (dict(name="x", is_first_party=False, grant_types=["implicit"]), "third-party"),
    (dict(name="x", is_first_party=False, grant_types=["client_credentials"], token_endpoint_auth_method="none"),
     "Invalid grant types: client_credentials"),
    (dict(name="x", request_options={"max_retries": 0, "additional_body_parameters": {"colour": "red"}}),
     "Payload validation error: 'Additional properties not allowed: colour'."),
]


@pytest.mark.parametrize("kwargs,message", INVALID_CREATES)
def test_create_validation(mgmt, standin, kwargs, message):
    kwargs.setdefault("request_options", NO_RETRY)
    with pytest.raises(BadRequestError) as exc:
        mgmt.clients.create(**kwargs)
    body = exc.value.body
    assert body["statusCode"] == 400 and body["error"] == "Bad Request" and body["errorCode"] == "invalid_body"
    assert message in body["message"]
    assert len(standin.clients) == 1  # only the management client


def test_missing_name_and_update_validation(mgmt, http, standin):
    headers = {"Authorization": f"Bearer {get_token(http, standin).json()['access_token']}"}
    resp = http.post(f"{standin.url}/api/v2/clients", json={"app_type": "spa"}, headers=headers)
    assert resp.status_code == 400
    assert resp.json()["message"] == "Payload validation error: 'Missing required property: name'."
    third = make_client(mgmt, "OEM", is_first_party=False, app_type="non_interactive",
                        grant_types=["client_credentials"])
    with pytest.raises(BadRequestError) as exc:
        mgmt.clients.update(third.client_id, is_first_party=True, request_options=NO_RETRY)
    assert "is_first_party" in exc.value.body["message"]
    with pytest.raises(BadRequestError):
        mgmt.clients.update(third.client_id, grant_types=["implicit"], request_options=NO_RETRY)
    with pytest.raises(BadRequestError):
        mgmt.clients.update(third.client_id, token_endpoint_auth_method="none", request_options=NO_RETRY)
    with pytest.raises(BadRequestError):
        mgmt.clients.update(third.client_id, name="<b>", request_options=NO_RETRY)
    assert mgmt.clients.get(third.client_id).is_first_party is False


# -- rate limiting and faults ------------------------------------------------------------------------------------------
def test_rate_limit_headers_and_429(mgmt, ctl, standin):
    raw = mgmt.clients.with_raw_response.get(standin.management_client_id)
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(raw.headers)
    with pytest.raises(NotFoundError) as exc:
        mgmt.clients.get("missing", request_options=NO_RETRY)
    assert "x-ratelimit-remaining" in exc.value.headers
    assert ctl.config(rate=0.5, burst=2)["burst"] == 2
    with pytest.raises(TooManyRequestsError) as exc:
        for _ in range(3):
            mgmt.clients.list(per_page=1, request_options=NO_RETRY)
    assert exc.value.body == {"statusCode": 429, "error": "Too Many Requests",
                              "message": "Global limit has been reached", "errorCode": "too_many_requests"}
    headers = exc.value.headers
    assert headers["x-ratelimit-limit"] == "2" and headers["x-ratelimit-remaining"] == "0"
    assert time.time() - 1 <= int(headers["x-ratelimit-reset"]) <= time.time() + 3
    ctl.config(rate=1000, burst=1000)
    assert mgmt.clients.list(per_page=1, request_options=NO_RETRY).items


def test_injected_503_drop_and_drop_after(mgmt, ctl, standin):
    ctl.fail_next("clients.create", 503)
    with pytest.raises(ApiError) as exc:
        make_client(mgmt, "first try")
    assert exc.value.status_code == 503 and "x-ratelimit-reset" in exc.value.headers
    assert len(standin.clients) == 1

    ctl.fail_next("clients.list", "drop")
    with pytest.raises(httpx.TransportError):
        mgmt.clients.list(request_options=NO_RETRY)

    # drop_after: the client is created but the answer is lost, the case that makes blind retries duplicate.
    ctl.fail_next("clients.create", "drop_after")
    with pytest.raises(httpx.TransportError):
        make_client(mgmt, "ghost")
    assert [c["name"] for c in ctl.state()["clients"]].count("ghost") == 1
    assert ctl.calls()["injected"] == {"clients.create:503": 1, "clients.list:drop": 1,
                                       "clients.create:drop_after": 1}


def test_sdk_retries_an_injected_503(mgmt, ctl):
    created = make_client(mgmt, "retry me")
    ctl.fail_next("clients.get", 503)
    assert mgmt.clients.get(created.client_id).name == "retry me"  # the SDK's own retry
    assert ctl.calls()["calls"]["clients.get"] == 2


# -- state -----------------------------------------------------------------------------------------------------------
def test_state_persists_across_restarts(tls, tmp_path, http):
    state_file = tmp_path / "auth0.json"
    first = Auth0StandIn(tls=tls, state_file=state_file).start()
    try:
        token = get_token(http, first).json()["access_token"]
        mgmt = ManagementClient(domain=first.domain, token=token, httpx_client=trusting(tls))
        created = make_client(mgmt, "kept", app_type="non_interactive")
        creds = (first.management_client_id, first.management_client_secret)
    finally:
        first.stop()
    second = Auth0StandIn(tls=tls, state_file=state_file)
    state = second.dump_state()
    assert (second.management_client_id, second.management_client_secret) == creds
    kept = next(c for c in state["clients"] if c["name"] == "kept")
    assert kept["client_secret"] == created.client_secret and len(state["clients"]) == 2


def test_reset_keeps_the_management_client(mgmt, ctl, standin):
    make_client(mgmt, "temp")
    ctl.reset()
    assert [c["client_id"] for c in ctl.state()["clients"]] == [standin.management_client_id]
    assert mgmt.clients.get(standin.management_client_id).app_type == "non_interactive"
