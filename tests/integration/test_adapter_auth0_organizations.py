"""Auth0Organizations against the Auth0 stand-in, through auth0-python's real ManagementClient over TLS: an
organization's life, its connections and grant associations with their typed answers, the failures the service
layer meets (limits, throttling, outages, a missing scope) classified, and the customer's token for its organization
checked the way a resource server checks it."""
from __future__ import annotations

import ssl
import uuid

import httpx
import jwt
import pytest

from shared.adapters.auth0_identity import Auth0IdentityProvider
from shared.adapters.auth0_organizations import ABSENT, ALREADY, APPLIED, Auth0Organizations
from shared.domain.errors import PermanentError, TransientError
from shared.domain.organizations import (ORGANIZATION_MANAGEMENT_SCOPES, Branding, OrganizationSettings,
                                         desired_organization)
from shared.service_layer.ports import ApplicationSpec

pytestmark = pytest.mark.timeout(120)

API = "https://api.contoso.local/"
DB = "Username-Password-Authentication"
BRAND = Branding("https://cdn.example.com/acme.png", "#0059D6", "#FFFFFF")


def _admin(stack, http) -> dict:
    cid, secret = stack.admin_credentials
    token = http.post(f"{stack.auth0.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": cid, "client_secret": secret,
        "audience": stack.auth0.management_audience}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _app_grant(stack, settings) -> dict:
    return next(g for g in stack.control("auth0").state()["client_grants"]
                if g["client_id"] == settings.auth0_client_id and g["audience"].endswith("/api/v2/"))


@pytest.fixture
def http(settings):
    with httpx.Client(verify=ssl.create_default_context(cafile=settings.local_stack_ca_bundle)) as client:
        yield client


@pytest.fixture
def org_scopes(stack, settings, http):
    """The app's Management API grant with the organization scopes, as the tenant command grants them when a profile
    uses organizations; restored afterwards (the session's stack is shared)."""
    grant = _app_grant(stack, settings)
    wanted = sorted(set(grant["scope"]) | set(ORGANIZATION_MANAGEMENT_SCOPES) | {"read:tenant_settings"})
    assert http.patch(f"{stack.auth0.url}/api/v2/client-grants/{grant['id']}", headers=_admin(stack, http),
                      json={"scope": wanted}).status_code == 200
    yield grant
    http.patch(f"{stack.auth0.url}/api/v2/client-grants/{grant['id']}", headers=_admin(stack, http),
               json={"scope": grant["scope"]})


@pytest.fixture
def identity(settings, auth0_ctl, org_scopes):
    adapter = Auth0IdentityProvider.from_settings(settings)
    yield adapter
    adapter.close()


@pytest.fixture
def orgs(identity, auth0_ctl):
    yield Auth0Organizations(identity)
    auth0_ctl.config(max_organizations=100_000, max_org_client_grants=100, org_names_in_tokens=False)


def new_id() -> str:
    return "org-" + uuid.uuid4().hex[:12]


def spec_for(customer: str, branding: Branding = BRAND):
    return desired_organization(customer, display_name=f"Customer {customer}", branding=branding, profile="oem",
                                settings=OrganizationSettings("per-customer", connections=(DB,)))


def m2m_app(identity, customer: str) -> tuple[str, str, str]:
    """(client id, secret, grant id) of a third-party machine-to-machine application with a grant to the API."""
    app = identity.create_application(ApplicationSpec(
        name=f"Customer {customer}", app_type="non_interactive", grant_types=("client_credentials",),
        token_endpoint_auth_method="client_secret_post", is_first_party=False, token_lifetime=3600,
        client_metadata={"customer_id": customer, "profile": "oem"}))
    grant_id = identity.create_client_grant(app.client_id, API, ("read:data",))
    return app.client_id, app.client_secret, grant_id


def claims_as_a_resource_server(http, settings, raw: str) -> dict:
    keys = jwt.PyJWKClient(f"https://{settings.auth0_domain}/.well-known/jwks.json", cache_keys=False,
                           ssl_context=ssl.create_default_context(cafile=settings.local_stack_ca_bundle))
    return jwt.decode(raw, keys.get_signing_key_from_jwt(raw).key, algorithms=["RS256"], audience=API,
                      issuer=f"https://{settings.auth0_domain}/")


def customer_token(http, settings, client_id, secret, **extra) -> httpx.Response:
    return http.post(f"https://{settings.auth0_domain}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "audience": API,
        **extra})


# -- the organization ------------------------------------------------------------------------------------------------
def test_an_organization_is_created_read_updated_and_deleted(orgs):
    customer = new_id()
    spec = spec_for(customer)
    created = orgs.create_organization(spec)
    assert created.org_id.startswith("org_") and created.name == spec.name
    assert (created.display_name, created.branding) == (spec.display_name, BRAND)
    assert created.metadata == {"customer_id": customer, "profile": "oem"}
    assert orgs.get_organization(created.org_id) == created == orgs.get_organization_by_name(spec.name)
    assert spec.differences(display_name=created.display_name, branding=created.branding,
                            metadata=created.metadata) == []

    rebranded = Branding("https://cdn.example.com/v2.svg", "#112233", "#000000")
    updated = orgs.update_organization(created.org_id, display_name="Renamed", branding=rebranded,
                                       metadata={"note": "kept"})
    assert (updated.display_name, updated.branding) == ("Renamed", rebranded)
    assert updated.metadata == {"customer_id": customer, "profile": "oem", "note": "kept"}
    assert orgs.update_organization(created.org_id, branding=Branding()).branding == Branding()
    assert orgs.update_organization(created.org_id) == orgs.get_organization(created.org_id)

    assert orgs.delete_organization(created.org_id) is True
    assert orgs.delete_organization(created.org_id) is False
    assert orgs.get_organization(created.org_id) is None and orgs.get_organization_by_name(spec.name) is None
    assert orgs.update_organization(created.org_id, display_name="x") is None


def test_a_taken_name_answers_none_and_the_organization_is_found_by_name(orgs):
    spec = spec_for(new_id())
    first = orgs.create_organization(spec)
    assert orgs.create_organization(spec) is None
    assert orgs.get_organization_by_name(spec.name) == first


def test_listing_reads_every_page(orgs, auth0_ctl):
    made = {orgs.create_organization(spec_for(new_id(), Branding())).org_id for _ in range(103)}
    before = auth0_ctl.calls()["calls"].get("organizations.list", 0)
    listed = {o.org_id for o in orgs.list_organizations()}
    assert made <= listed
    pages = auth0_ctl.calls()["calls"]["organizations.list"] - before
    assert pages == -(-len(listed) // 100)  # one request per page of 100, none after the last


# -- connections and grants --------------------------------------------------------------------------------------------
def test_enabled_connections_have_typed_answers(orgs):
    org = orgs.create_organization(spec_for(new_id()))
    ids = orgs.connection_ids([DB, "no-such-connection"])
    assert list(ids) == [DB]
    assert orgs.enable_connection(org.org_id, ids[DB]) == APPLIED
    assert orgs.enable_connection(org.org_id, ids[DB]) == ALREADY
    assert orgs.enable_connection(org.org_id, "con_doesnotexist00") == ABSENT
    assert orgs.enable_connection("org_doesnotexist00", ids[DB]) == ABSENT
    [enabled] = orgs.list_enabled_connections(org.org_id)
    assert (enabled.connection_id, enabled.name, enabled.assign_membership_on_login) == (ids[DB], DB, False)
    assert orgs.disable_connection(org.org_id, ids[DB]) is True
    assert orgs.disable_connection(org.org_id, ids[DB]) is False
    assert orgs.list_enabled_connections("org_doesnotexist00") is None


def test_grant_associations_and_the_customers_token_for_its_organization(orgs, identity, http, settings):
    customer = new_id()
    org = orgs.create_organization(spec_for(customer))
    client_id, secret, grant_id = m2m_app(identity, customer)
    assert orgs.set_grant_organization_usage(grant_id, "require") is True
    assert orgs.set_grant_organization_usage("cgr_doesnotexist00", "require") is False

    assert customer_token(http, settings, client_id, secret, organization=org.org_id).status_code == 403
    assert orgs.associate_client_grant(org.org_id, grant_id) == APPLIED
    assert orgs.associate_client_grant(org.org_id, grant_id) == ALREADY
    assert orgs.associate_client_grant(org.org_id, "cgr_doesnotexist00") == ABSENT
    assert orgs.associate_client_grant("org_doesnotexist00", grant_id) == ABSENT
    assert orgs.list_client_grant_ids(org.org_id) == (grant_id,)
    assert orgs.grant_organization_ids(grant_id) == (org.org_id,)
    assert orgs.grant_organization_ids("cgr_doesnotexist00") is None

    answer = customer_token(http, settings, client_id, secret, organization=org.org_id)
    claims = claims_as_a_resource_server(http, settings, answer.json()["access_token"])
    assert (claims["org_id"], claims["azp"]) == (org.org_id, client_id) and "org_name" not in claims
    # Without naming it, the grant requires it: refused, until the application has it as its default.
    assert customer_token(http, settings, client_id, secret).status_code == 400
    assert orgs.set_application_organizations(client_id, usage=None, default_organization=org.org_id) is True
    default = customer_token(http, settings, client_id, secret)
    assert claims_as_a_resource_server(http, settings, default.json()["access_token"])["org_id"] == org.org_id

    assert orgs.dissociate_client_grant(org.org_id, grant_id) is True
    assert orgs.dissociate_client_grant(org.org_id, grant_id) is False
    assert orgs.list_client_grant_ids(org.org_id) == ()
    assert customer_token(http, settings, client_id, secret, organization=org.org_id).status_code == 403
    assert orgs.list_client_grant_ids("org_doesnotexist00") is None
    assert orgs.set_application_organizations("tpc_doesnotexist", usage=None) is False


def test_org_name_in_tokens_follows_the_tenant_setting(orgs, identity, http, settings, auth0_ctl):
    customer = new_id()
    org = orgs.create_organization(spec_for(customer))
    client_id, secret, grant_id = m2m_app(identity, customer)
    orgs.set_grant_organization_usage(grant_id, "require")
    orgs.associate_client_grant(org.org_id, grant_id)
    assert orgs.org_names_in_tokens() is False
    auth0_ctl.config(org_names_in_tokens=True)
    assert orgs.org_names_in_tokens() is True
    answer = customer_token(http, settings, client_id, secret, organization=org.org_id)
    assert claims_as_a_resource_server(http, settings, answer.json()["access_token"])["org_name"] == org.name


# -- failures ------------------------------------------------------------------------------------------------------
def test_the_tenants_limit_is_permanent_and_says_so(orgs, auth0_ctl, stack):
    auth0_ctl.config(max_organizations=len(stack.auth0.organizations))
    with pytest.raises(PermanentError) as refused:
        orgs.create_organization(spec_for(new_id()))
    assert refused.value.status == 403 and "too_many_entities" in refused.value.message
    assert "limit" in refused.value.message


def test_throttling_and_outages_are_transient_and_nothing_is_retried_in_call(orgs, auth0_ctl):
    org = orgs.create_organization(spec_for(new_id()))
    auth0_ctl.fail_next("organizations.create", 503)
    before = auth0_ctl.calls()["calls"].get("organizations.create", 0)
    with pytest.raises(TransientError) as outage:
        orgs.create_organization(spec_for(new_id()))
    assert outage.value.status == 503
    assert auth0_ctl.calls()["calls"]["organizations.create"] - before == 1  # a POST is never repeated in-call
    auth0_ctl.fail_next("organizations.client_grants.create", 429)
    with pytest.raises(TransientError):
        orgs.associate_client_grant(org.org_id, "cgr_any")


def test_a_missing_scope_is_permanent_and_names_it(orgs, stack, settings, http, org_scopes):
    narrow = [s for s in org_scopes["scope"] if "organization" not in s]
    http.patch(f"{stack.auth0.url}/api/v2/client-grants/{org_scopes['id']}", headers=_admin(stack, http),
               json={"scope": narrow})
    orgs.provider.token.invalidate()  # the next call fetches a token with the narrowed grant
    with pytest.raises(PermanentError) as refused:
        orgs.get_organization("org_any")
    assert refused.value.status == 403 and "insufficient_scope" in refused.value.message
    assert settings.auth0_client_secret not in str(refused.value)
