"""The Auth0 stand-in's Organizations, driven by the real auth0-python 6.x ManagementClient over TLS: organizations
(name rules, branding as Auth0 validates it, uniqueness), enabled connections, client-grant associations,
``organization_usage``/``allow_any_organization`` on grants, entity limits, persistence; and organization tokens,
checked the way a resource server checks them (PyJWT against the tenant's JWKS)."""
from __future__ import annotations

import ssl

import httpx
import jwt
import pytest
from auth0.management import ManagementClient
from auth0.management.core.api_error import ApiError
from auth0.management.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError
from auth0.management.types import OrganizationBranding, OrganizationBrandingColors

from emulators.auth0 import Auth0StandIn
from emulators.control import StandInControl

pytestmark = pytest.mark.timeout(60)
API = "https://api.contoso.local/"
NO_RETRY = {"max_retries": 0}
DB = "Username-Password-Authentication"


@pytest.fixture
def ctl(auth0_server, tls):
    control = StandInControl(auth0_server.url, verify=str(tls.ca_cert))
    control.reset()
    auth0_server.set_config({"max_organizations": 100_000, "max_org_client_grants": 100,
                             "org_names_in_tokens": False})
    return control


@pytest.fixture
def server(ctl, auth0_server):
    return auth0_server


@pytest.fixture
def http(tls):
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_cert))) as client:
        yield client


def token_response(http, standin, client_id, secret, audience, **extra) -> httpx.Response:
    return http.post(f"{standin.url}/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                                          "client_secret": secret, "audience": audience, **extra})


@pytest.fixture
def mgmt(server, http, tls):
    access = token_response(http, server, server.management_client_id, server.management_client_secret,
                            server.management_audience).json()["access_token"]
    return ManagementClient(domain=server.domain, token=access,
                            httpx_client=httpx.Client(verify=ssl.create_default_context(cafile=str(tls.ca_cert))))


def branding(logo="https://cdn.example.com/acme.png", primary="#0059D6", background="#FFFFFF") -> OrganizationBranding:
    return OrganizationBranding(logo_url=logo, colors=OrganizationBrandingColors(primary=primary,
                                                                                page_background=background))


def m2m_client(m: ManagementClient, *, first_party=False, usage="require", any_org=None):
    client = m.clients.create(name="Acme", app_type="non_interactive", grant_types=["client_credentials"],
                              is_first_party=first_party, request_options=NO_RETRY)
    extra = {"allow_any_organization": any_org} if any_org is not None else {}
    grant = m.client_grants.create(client_id=client.client_id, audience=API, scope=["read:data"],
                                   organization_usage=usage, request_options=NO_RETRY, **extra)
    return client, grant


def as_resource_server(raw: str, standin, tls) -> dict:
    keys = jwt.PyJWKClient(f"{standin.url}/.well-known/jwks.json", cache_keys=False, cache_jwk_set=False,
                           ssl_context=ssl.create_default_context(cafile=str(tls.ca_cert)))
    return jwt.decode(raw, keys.get_signing_key_from_jwt(raw).key, algorithms=["RS256"], audience=API,
                      issuer=f"https://{standin.domain}/")


# -- organizations -------------------------------------------------------------------------------------------------
def test_an_organization_is_created_read_by_id_and_name_updated_and_deleted(mgmt, http, server):
    org = mgmt.organizations.create(name="acme", display_name="Acme Inc.", branding=branding(),
                                    metadata={"customer_id": "acme"}, request_options=NO_RETRY)
    assert org.id.startswith("org_") and len(org.id) == 20
    assert (org.name, org.display_name, org.metadata) == ("acme", "Acme Inc.", {"customer_id": "acme"})
    assert org.branding.colors.primary == "#0059D6"
    assert mgmt.organizations.get_by_name("acme", request_options=NO_RETRY).id == org.id

    # Branding is replaced as a whole; metadata is merged, a null removing a key.
    changed = mgmt.organizations.update(org.id, display_name="Acme GmbH", metadata={"customer_id": None, "tier": "a"},
                                        branding=OrganizationBranding(logo_url="https://cdn.example.com/new.svg"),
                                        request_options=NO_RETRY)
    assert changed.display_name == "Acme GmbH" and changed.metadata == {"tier": "a"}
    assert changed.branding.logo_url == "https://cdn.example.com/new.svg" and changed.branding.colors is None
    assert mgmt.organizations.get(org.id, request_options=NO_RETRY).branding == changed.branding

    mgmt.organizations.delete(org.id, request_options=NO_RETRY)
    for call in (lambda: mgmt.organizations.get(org.id, request_options=NO_RETRY),
                 lambda: mgmt.organizations.delete(org.id, request_options=NO_RETRY),
                 lambda: mgmt.organizations.get_by_name("acme", request_options=NO_RETRY)):
        with pytest.raises(NotFoundError) as missing:
            call()
        # The body a tenant answers (recorded in go-auth0's tests): no errorCode.
        assert missing.value.body == {"statusCode": 404, "error": "Not Found",
                                      "message": "No organization found by that id or name"}


@pytest.mark.parametrize("name, complaint", [
    ("Acme", "format organization-name"),
    ("acme inc", "format organization-name"),
    ("acme.inc", "format organization-name"),
    ("a" * 51, "too long (51 chars), maximum 50"),
    ("", "too short"),
])
def test_organization_names_follow_auth0s_rule(mgmt, name, complaint):
    with pytest.raises(BadRequestError) as refused:
        mgmt.organizations.create(name=name, request_options=NO_RETRY)
    assert complaint in refused.value.body["message"]
    assert mgmt.organizations.create(name="0-acme_inc", request_options=NO_RETRY).name == "0-acme_inc"


def test_display_name_and_metadata_limits(mgmt):
    with pytest.raises(BadRequestError, match=r"too long \(256 chars\), maximum 255"):
        mgmt.organizations.create(name="acme", display_name="x" * 256, request_options=NO_RETRY)
    with pytest.raises(BadRequestError, match="maximum 25"):
        mgmt.organizations.create(name="acme", metadata={f"k{i}": "v" for i in range(26)}, request_options=NO_RETRY)
    org = mgmt.organizations.create(name="acme", metadata={f"k{i}": "v" for i in range(25)}, request_options=NO_RETRY)
    with pytest.raises(BadRequestError, match="maximum 25"):
        mgmt.organizations.update(org.id, metadata={"one-more": "v"}, request_options=NO_RETRY)
    with pytest.raises(BadRequestError, match="does not implement token_quota"):
        mgmt.organizations.update(org.id, token_quota={"client_credentials": {"per_day": 1}}, request_options=NO_RETRY)


def test_names_are_unique_on_create_and_rename(mgmt):
    first = mgmt.organizations.create(name="acme", request_options=NO_RETRY)
    other = mgmt.organizations.create(name="globex", request_options=NO_RETRY)
    with pytest.raises(ConflictError):
        mgmt.organizations.create(name="acme", request_options=NO_RETRY)
    with pytest.raises(ApiError) as renamed:  # auth0-python 6.8 maps a 409 to ConflictError on create only
        mgmt.organizations.update(other.id, name="acme", request_options=NO_RETRY)
    assert renamed.value.status_code == 409
    assert mgmt.organizations.update(first.id, name="acme", request_options=NO_RETRY).name == "acme"


@pytest.mark.parametrize("body, complaint", [
    ({"logo_url": "http://cdn.example.com/a.png"}, "strict-https-uri-or-null"),
    ({"logo_url": "javascript:alert(1)"}, "strict-https-uri-or-null"),
    ({"logo_url": "https://cdn.example.com/a b.png"}, "strict-https-uri-or-null"),
    ({"logo_url": "https://cdn.example.com:99999/a.png"}, "strict-https-uri-or-null"),
    ({"colors": {"primary": "#0059D6"}}, "Missing required property: page_background"),
    ({"colors": {"primary": "#fff", "page_background": "#FFFFFF"}}, "format html-color"),
    ({"colors": {"primary": "red", "page_background": "#FFFFFF"}}, "format html-color"),
    ({"colors": {"primary": "#0059D6", "page_background": "#FFFFFF", "link": "#000000"}},
     "Additional properties not allowed: link"),
    ({"logo": "https://cdn.example.com/a.png"}, "Additional properties not allowed: logo"),
])
def test_branding_is_validated_as_auth0_validates_it(http, server, mgmt, body, complaint):
    access = token_response(http, server, server.management_client_id, server.management_client_secret,
                            server.management_audience).json()["access_token"]
    answer = http.post(f"{server.url}/api/v2/organizations", json={"name": "acme", "branding": body},
                       headers={"Authorization": f"Bearer {access}"})
    assert answer.status_code == 400 and complaint in answer.json()["message"], answer.text
    assert list(mgmt.organizations.list(request_options=NO_RETRY)) == []


def test_listing_pages_by_checkpoint_and_by_offset(mgmt, http, server):
    names = [f"org-{i}" for i in range(5)]
    for name in names:
        mgmt.organizations.create(name=name, request_options=NO_RETRY)
    assert [o.name for o in mgmt.organizations.list(take=2, request_options=NO_RETRY)] == names
    access = token_response(http, server, server.management_client_id, server.management_client_secret,
                            server.management_audience).json()["access_token"]
    page = http.get(f"{server.url}/api/v2/organizations", params={"page": 1, "per_page": 2, "include_totals": "true"},
                    headers={"Authorization": f"Bearer {access}"}).json()
    assert [o["name"] for o in page["organizations"]] == names[2:4] and page["total"] == 5


def test_the_tenants_organization_limit_refuses_before_anything_is_made(mgmt, ctl):
    ctl.config(max_organizations=1)
    mgmt.organizations.create(name="first", request_options=NO_RETRY)
    with pytest.raises(ForbiddenError) as refused:
        mgmt.organizations.create(name="second", request_options=NO_RETRY)
    assert refused.value.body["errorCode"] == "too_many_entities"
    assert [o.name for o in mgmt.organizations.list(request_options=NO_RETRY)] == ["first"]


# -- enabled connections ----------------------------------------------------------------------------------------------
def test_enabled_connections_by_the_connections_id(mgmt, ctl):
    org = mgmt.organizations.create(name="acme", request_options=NO_RETRY)
    [db] = list(mgmt.connections.list(name=DB, request_options=NO_RETRY))
    assert db.strategy == "auth0" and db.id.startswith("con_")
    added = mgmt.organizations.enabled_connections.add(org.id, connection_id=db.id, assign_membership_on_login=True,
                                                       request_options=NO_RETRY)
    assert (added.connection.name, added.show_as_button, added.is_signup_enabled) == (DB, True, False)
    with pytest.raises(ConflictError):
        mgmt.organizations.enabled_connections.add(org.id, connection_id=db.id, request_options=NO_RETRY)
    with pytest.raises(NotFoundError):
        mgmt.organizations.enabled_connections.add(org.id, connection_id="con_nope", request_options=NO_RETRY)
    # Auth0's rule, as a tenant answers it.
    with pytest.raises(BadRequestError, match="support is_signup_enabled = true"):
        mgmt.organizations.enabled_connections.update(org.id, db.id, assign_membership_on_login=False,
                                                      is_signup_enabled=True, request_options=NO_RETRY)
    updated = mgmt.organizations.enabled_connections.update(org.id, db.id, is_signup_enabled=True,
                                                            request_options=NO_RETRY)
    assert updated.is_signup_enabled is True
    assert [c.connection_id for c in mgmt.organizations.enabled_connections.list(org.id, request_options=NO_RETRY)] \
        == [db.id]
    mgmt.organizations.enabled_connections.delete(org.id, db.id, request_options=NO_RETRY)
    with pytest.raises(NotFoundError):
        mgmt.organizations.enabled_connections.get(org.id, db.id, request_options=NO_RETRY)

    ctl.config(connections=[{"name": f"corp-{i}", "strategy": "samlp"} for i in range(11)])
    corp = [c.id for c in mgmt.connections.list(strategy="samlp", take=50, request_options=NO_RETRY)]
    for cid in corp[:10]:
        mgmt.organizations.enabled_connections.add(org.id, connection_id=cid, request_options=NO_RETRY)
    with pytest.raises(ForbiddenError):
        mgmt.organizations.enabled_connections.add(org.id, connection_id=corp[10], request_options=NO_RETRY)


# -- grants and associations ----------------------------------------------------------------------------------------
def test_organization_usage_and_allow_any_organization_on_grants(mgmt):
    with pytest.raises(BadRequestError, match='No enum match for: "required"'):
        m2m_client(mgmt, usage="required")  # the value the M2M page's table names; the API's is "require"
    with pytest.raises(BadRequestError, match="Third-party clients cannot use allow_any_organization"):
        m2m_client(mgmt, any_org=True)
    _, grant = m2m_client(mgmt, usage="allow")
    with pytest.raises(BadRequestError, match="allow_any_organization"):
        mgmt.client_grants.update(grant.id, allow_any_organization=True, request_options=NO_RETRY)
    first_party, trusted = m2m_client(mgmt, first_party=True, any_org=True)
    assert (trusted.organization_usage, trusted.allow_any_organization) == ("require", True)
    reset = mgmt.client_grants.update(trusted.id, organization_usage=None, request_options=NO_RETRY)
    assert reset.organization_usage is None


def test_client_grant_associations_and_what_removes_them(mgmt, ctl):
    org = mgmt.organizations.create(name="acme", request_options=NO_RETRY)
    client, grant = m2m_client(mgmt)
    associated = mgmt.organizations.client_grants.create(org.id, grant_id=grant.id, request_options=NO_RETRY)
    assert (associated.id, associated.client_id, associated.organization_usage) == (grant.id, client.client_id,
                                                                                   "require")
    with pytest.raises(ConflictError):
        mgmt.organizations.client_grants.create(org.id, grant_id=grant.id, request_options=NO_RETRY)
    with pytest.raises(NotFoundError):
        mgmt.organizations.client_grants.create(org.id, grant_id="cgr_nope", request_options=NO_RETRY)
    listed = mgmt.organizations.client_grants.list(org.id, grant_ids=[grant.id], request_options=NO_RETRY)
    assert [g.id for g in listed] == [grant.id]
    assert [o.id for o in mgmt.client_grants.organizations.list(grant.id, request_options=NO_RETRY)] == [org.id]

    mgmt.organizations.client_grants.delete(org.id, grant.id, request_options=NO_RETRY)
    with pytest.raises(NotFoundError):
        mgmt.organizations.client_grants.delete(org.id, grant.id, request_options=NO_RETRY)
    mgmt.organizations.client_grants.create(org.id, grant_id=grant.id, request_options=NO_RETRY)
    mgmt.client_grants.delete(grant.id, request_options=NO_RETRY)  # takes its associations with it
    assert list(mgmt.organizations.client_grants.list(org.id, request_options=NO_RETRY)) == []
    assert ctl.state()["organization_client_grants"] == []

    _, again = m2m_client(mgmt)
    mgmt.organizations.client_grants.create(org.id, grant_id=again.id, request_options=NO_RETRY)
    mgmt.organizations.delete(org.id, request_options=NO_RETRY)  # and so does deleting the organization
    assert list(mgmt.client_grants.organizations.list(again.id, request_options=NO_RETRY)) == []


def test_the_client_grants_per_organization_limit(mgmt, ctl):
    ctl.config(max_org_client_grants=1)
    org = mgmt.organizations.create(name="acme", request_options=NO_RETRY)
    _, first = m2m_client(mgmt)
    _, second = m2m_client(mgmt)
    mgmt.organizations.client_grants.create(org.id, grant_id=first.id, request_options=NO_RETRY)
    with pytest.raises(ForbiddenError) as refused:
        mgmt.organizations.client_grants.create(org.id, grant_id=second.id, request_options=NO_RETRY)
    assert refused.value.body["errorCode"] == "too_many_entities"


# -- tokens for an organization -------------------------------------------------------------------------------------
def test_a_require_grant_gives_tokens_only_for_an_associated_organization(mgmt, http, server, tls):
    org = mgmt.organizations.create(name="acme", request_options=NO_RETRY)
    other = mgmt.organizations.create(name="globex", request_options=NO_RETRY)
    client, grant = m2m_client(mgmt)
    secret = mgmt.clients.get(client.client_id, request_options=NO_RETRY).client_secret
    ask = lambda **extra: token_response(http, server, client.client_id, secret, API, **extra)  # noqa: E731

    missing = ask()
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    assert "organization is required" in missing.json()["error_description"]
    assert ask(organization=org.id).status_code == 403  # not associated yet
    mgmt.organizations.client_grants.create(org.id, grant_id=grant.id, request_options=NO_RETRY)
    claims = as_resource_server(ask(organization=org.id).json()["access_token"], server, tls)
    assert claims["org_id"] == org.id and "org_name" not in claims
    assert claims["azp"] == client.client_id and claims["sub"] == f"{client.client_id}@clients"

    # Another organization, one that does not exist, and a name while the tenant takes ids only: the same refusal.
    for organization in (other.id, "org_doesnotexist00", "acme"):
        refused = ask(organization=organization)
        assert (refused.status_code, refused.json()["error"]) == (403, "access_denied"), organization
    mgmt.organizations.client_grants.delete(org.id, grant.id, request_options=NO_RETRY)
    assert ask(organization=org.id).status_code == 403


def test_org_name_and_names_as_the_parameter_follow_the_tenant_setting(mgmt, http, server, tls):
    org = mgmt.organizations.create(name="acme", request_options=NO_RETRY)
    client, grant = m2m_client(mgmt)
    mgmt.organizations.client_grants.create(org.id, grant_id=grant.id, request_options=NO_RETRY)
    secret = mgmt.clients.get(client.client_id, request_options=NO_RETRY).client_secret
    mgmt.tenants.settings.update(allow_organization_name_in_authentication_api=True, request_options=NO_RETRY)
    assert mgmt.tenants.settings.get(request_options=NO_RETRY).allow_organization_name_in_authentication_api
    for organization in (org.id, "acme"):
        raw = token_response(http, server, client.client_id, secret, API, organization=organization).json()
        claims = as_resource_server(raw["access_token"], server, tls)
        assert (claims["org_id"], claims["org_name"]) == (org.id, "acme")


def test_deny_and_allow_grants_and_a_default_organization(mgmt, http, server, tls):
    org = mgmt.organizations.create(name="acme", request_options=NO_RETRY)
    plain, _ = m2m_client(mgmt, usage="deny")
    plain_secret = mgmt.clients.get(plain.client_id, request_options=NO_RETRY).client_secret
    assert "org_id" not in as_resource_server(
        token_response(http, server, plain.client_id, plain_secret, API).json()["access_token"], server, tls)
    refused = token_response(http, server, plain.client_id, plain_secret, API, organization=org.id)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_request")

    optional, grant = m2m_client(mgmt, usage="allow")
    secret = mgmt.clients.get(optional.client_id, request_options=NO_RETRY).client_secret
    mgmt.organizations.client_grants.create(org.id, grant_id=grant.id, request_options=NO_RETRY)
    assert "org_id" not in as_resource_server(
        token_response(http, server, optional.client_id, secret, API).json()["access_token"], server, tls)

    # "a default organization that is automatically applied ... when none is specified and organization support is
    # required by the API"
    mgmt.client_grants.update(grant.id, organization_usage="require", request_options=NO_RETRY)
    with pytest.raises(NotFoundError):
        mgmt.clients.update(optional.client_id, default_organization={"organization_id": "org_nope",
                                                                      "flows": ["client_credentials"]},
                            request_options=NO_RETRY)
    mgmt.clients.update(optional.client_id, default_organization={"organization_id": org.id,
                                                                  "flows": ["client_credentials"]},
                        request_options=NO_RETRY)
    claims = as_resource_server(token_response(http, server, optional.client_id, secret, API).json()["access_token"],
                                server, tls)
    assert claims["org_id"] == org.id
    mgmt.organizations.delete(org.id, request_options=NO_RETRY)
    assert token_response(http, server, optional.client_id, secret, API).status_code == 403


def test_organizations_need_their_scopes(http, server, ctl, mgmt):
    state = ctl.state()
    [grant] = [g for g in state["client_grants"] if g["client_id"] == server.management_client_id]
    narrow = [s for s in grant["scope"] if "organization" not in s]
    mgmt.client_grants.update(grant["id"], scope=narrow, request_options=NO_RETRY)
    access = token_response(http, server, server.management_client_id, server.management_client_secret,
                            server.management_audience).json()["access_token"]
    answer = http.get(f"{server.url}/api/v2/organizations", headers={"Authorization": f"Bearer {access}"})
    assert answer.status_code == 403 and answer.json()["errorCode"] == "insufficient_scope"


def test_organizations_and_their_links_survive_a_restart(tls, tmp_path, http):
    state_file = tmp_path / "auth0.json"
    first = Auth0StandIn(tls=tls, state_file=state_file).start()
    try:
        access = token_response(http, first, first.management_client_id, first.management_client_secret,
                                first.management_audience).json()["access_token"]
        m = ManagementClient(domain=first.domain, token=access, httpx_client=http)
        org = m.organizations.create(name="acme", branding=branding(), request_options=NO_RETRY)
        _, grant = m2m_client(m)
        m.organizations.client_grants.create(org.id, grant_id=grant.id, request_options=NO_RETRY)
        [db] = list(m.connections.list(name=DB, request_options=NO_RETRY))
        m.organizations.enabled_connections.add(org.id, connection_id=db.id, request_options=NO_RETRY)
    finally:
        first.stop()
    second = Auth0StandIn(tls=tls, state_file=state_file)
    assert second.organizations[org.id]["branding"]["colors"]["primary"] == "#0059D6"
    assert second.org_grants == [{"organization_id": org.id, "grant_id": grant.id}]
    assert [c["connection_id"] for c in second.org_connections] == [db.id]
    assert db.id in second.connections


def test_emulators_show_names_a_customers_organization(mgmt, ctl):
    from emulators.show import _organizations, render

    org = mgmt.organizations.create(name="acme", display_name="Acme", branding=branding(), request_options=NO_RETRY)
    client, grant = m2m_client(mgmt)
    mgmt.organizations.client_grants.create(org.id, grant_id=grant.id, request_options=NO_RETRY)
    [db] = list(mgmt.connections.list(name=DB, request_options=NO_RETRY))
    mgmt.organizations.enabled_connections.add(org.id, connection_id=db.id, request_options=NO_RETRY)
    stray = mgmt.organizations.create(name="stray", metadata={"customer_id": "globex"}, request_options=NO_RETRY)

    state = ctl.state()
    [shown] = _organizations(state, "acme", {client.client_id: "acme"})
    assert shown == {"id": org.id, "name": "acme", "display_name": "Acme", "customer": "acme",
                     "logo_url": "https://cdn.example.com/acme.png",
                     "colors": {"primary": "#0059D6", "page_background": "#FFFFFF"}, "connections": [DB],
                     "client_grants": [{"client_id": client.client_id, "audience": API,
                                        "organization_usage": "require"}]}
    # Unassociated, it is known by the customer its metadata names.
    assert [o["id"] for o in _organizations(state, "globex", {client.client_id: "acme"})] == [stray.id]
    doc = {"stack": {}, "customer": "acme", "auth0": {"applications": [], "organizations": [shown]},
           "keyvault": {"secrets": [], "deleted_secrets": []},
           "apim": {"authorization_servers": [], "subscriptions": []},
           "servicebus": {"available": False, "note": "-"}}
    text = render(doc)
    assert f"{org.id}  acme  'Acme'  customer=acme  logo=https://cdn.example.com/acme.png  colours=#0059D6/#FFFFFF" \
        in text
    assert f"M2M access: {client.client_id} -> {API}  (organization_usage require)" in text
