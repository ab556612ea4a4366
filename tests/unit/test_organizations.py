"""Customers as Auth0 Organizations, the domain's side: the event's branding read as Auth0 validates it (and stricter
where the login page makes it matter), a profile's organization keys, the organization's name and desired state,
and the subscription display name the gateway binds tokens by."""
from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings, strategies as st

from shared.domain import naming
from shared.domain.errors import InvalidEvent
from shared.domain.events import CUSTOMER_ID
from shared.domain.organizations import (MAX_CONNECTIONS, Branding, OrganizationSettings, desired_organization,
                                         organization_settings, parse_branding, subscription_display_name)

#: Auth0's organization name rule (Create Organizations): lower-case letters, digits, _ and -, 1-50 characters
AUTH0_ORG_NAME = re.compile(r"^[a-z0-9_-]{1,50}$")
M2M = ("client_credentials",)
WEB = ("authorization_code", "refresh_token")


def test_branding_with_a_logo_and_both_colours():
    branding = parse_branding({"logoUrl": "https://cdn.example.com/acme.png", "primaryColor": "#0059d6",
                               "pageBackgroundColor": "#FFFFFF"})
    assert branding == Branding("https://cdn.example.com/acme.png", "#0059D6", "#FFFFFF")
    assert branding.to_auth0() == {"logo_url": "https://cdn.example.com/acme.png",
                                   "colors": {"primary": "#0059D6", "page_background": "#FFFFFF"}}
    assert Branding.from_auth0(branding.to_auth0()) == branding
    assert parse_branding({}) == Branding() and Branding().empty and Branding().to_auth0() == {}
    assert parse_branding({"logoUrl": "https://cdn.example.com/a.svg"}).to_auth0() == {
        "logo_url": "https://cdn.example.com/a.svg"}


@pytest.mark.parametrize("value, field, rule", [
    ("https://x", "data.branding", "must be an object"),
    ({"logo": "https://cdn.example.com/a.png"}, "data.branding.logo", "is not a branding field"),
    ({"logoUrl": "http://cdn.example.com/a.png"}, "data.branding.logoUrl", "https URL"),
    ({"logoUrl": "javascript:alert(1)"}, "data.branding.logoUrl", "https URL"),
    ({"logoUrl": "https://cdn.example.com/a.png#x"}, "data.branding.logoUrl", "without a fragment"),
    ({"logoUrl": "https://user:pw@cdn.example.com/a.png"}, "data.branding.logoUrl", "user information"),
    ({"logoUrl": 'https://cdn.example.com/"><script>'}, "data.branding.logoUrl", "RFC 3986"),
    ({"logoUrl": "https://192.168.1.1/reboot"}, "data.branding.logoUrl", "own machine or network"),
    ({"logoUrl": "https://router.local/x.png"}, "data.branding.logoUrl", "own machine or network"),
    ({"logoUrl": "https://cdn.example.com/" + "a" * 2000}, "data.branding.logoUrl", "at most 2000"),
    ({"logoUrl": 7}, "data.branding.logoUrl", "must be a string"),
    ({"primaryColor": "#fff", "pageBackgroundColor": "#FFFFFF"}, "data.branding.primaryColor", "#RRGGBB"),
    ({"primaryColor": "red", "pageBackgroundColor": "#FFFFFF"}, "data.branding.primaryColor", "#RRGGBB"),
    ({"primaryColor": "#0059D6"}, "data.branding.pageBackgroundColor", "both colours together"),
    ({"pageBackgroundColor": "#0059D6"}, "data.branding.primaryColor", "both colours together"),
])
def test_branding_that_auth0_or_the_login_page_would_not_take_is_refused_naming_the_field(value, field, rule):
    with pytest.raises(InvalidEvent) as refused:
        parse_branding(value)
    assert refused.value.field == field and rule in refused.value.rule


def test_an_odd_key_is_shown_escaped_in_the_rejection():
    with pytest.raises(InvalidEvent) as refused:
        parse_branding({"\x1b[31m": 1})
    assert "\x1b" not in refused.value.field


def test_profiles_without_organizations_keep_todays_keys_only():
    assert organization_settings({}, grant_types=M2M, first_party=False, where="profile 'oem'") == (
        OrganizationSettings(), [])
    _, problems = organization_settings({"organization_usage": "require"}, grant_types=M2M, first_party=False,
                                        where="profile 'oem'")
    assert problems == ["profile 'oem': organization_usage need organization = \"per-customer\""]


def test_a_per_customer_profile():
    settings_, problems = organization_settings(
        {"organization": "per-customer", "organization_connections": ["Username-Password-Authentication"]},
        grant_types=M2M, first_party=False, where="profile 'oem'")
    assert problems == []
    assert settings_ == OrganizationSettings("per-customer", "require", ("Username-Password-Authentication",), None)
    assert settings_.per_customer


@pytest.mark.parametrize("raw, grants, first_party, complaint", [
    ({"organization": "yes"}, M2M, False, "organization must be one of"),
    ({"organization": "per-customer", "organization_usage": "deny"}, M2M, False, "deny would leave"),
    ({"organization": "per-customer", "organization_connections": "db"}, M2M, False, "list of connection names"),
    ({"organization": "per-customer", "organization_connections": ["db", "db"]}, M2M, False, "twice"),
    ({"organization": "per-customer", "organization_connections": [f"c{i}" for i in range(MAX_CONNECTIONS + 1)]},
     M2M, False, "at most 10"),
    ({"organization": "per-customer", "organization_connections": ["-bad"]}, M2M, False, "not a connection name"),
    ({"organization": "per-customer", "organization_require_behavior": "post_login_prompt"}, M2M, False,
     "logs users in"),
    ({"organization": "per-customer", "organization_usage": "allow",
      "organization_require_behavior": "post_login_prompt"}, WEB, False, "logs users in"),
    ({"organization": "per-customer", "organization_require_behavior": "no_prompt"}, WEB, False,
     "third-party application cannot be relied on"),
    ({"organization": "per-customer", "organization_require_behavior": "sometimes"}, WEB, True, "must be one of"),
])
def test_profile_mistakes_are_named(raw, grants, first_party, complaint):
    _, problems = organization_settings(raw, grant_types=grants, first_party=first_party, where="profile 'p'")
    assert problems and all(p.startswith("profile 'p': ") for p in problems)
    assert any(complaint in p for p in problems), problems


def test_a_first_party_login_profile_may_use_no_prompt():
    settings_, problems = organization_settings(
        {"organization": "per-customer", "organization_require_behavior": "no_prompt"}, grant_types=WEB,
        first_party=True, where="profile 'p'")
    assert problems == [] and settings_.require_behavior == "no_prompt"


def test_the_desired_organization_and_what_drift_reports():
    spec = desired_organization("Acme.EU", display_name="Acme Europe", branding=Branding(logo_url="https://a.b/c"),
                                profile="oem", settings=OrganizationSettings("per-customer"))
    assert spec.name == naming.organization_name("Acme.EU") and AUTH0_ORG_NAME.fullmatch(spec.name)
    assert spec.metadata == {"customer_id": "Acme.EU", "profile": "oem"} and spec.usage == "require"
    assert spec.differences(display_name="Acme Europe", branding=Branding(logo_url="https://a.b/c"),
                            metadata={"customer_id": "Acme.EU", "profile": "oem", "other": "x"}) == []
    assert spec.differences(display_name="Acme", branding=Branding(), metadata={}) == [
        "display name 'Acme' instead of 'Acme Europe'", "branding differs",
        "metadata customer_id is None instead of 'Acme.EU'", "metadata profile is None instead of 'oem'"]


def test_the_subscription_records_the_organization_after_the_client():
    assert subscription_display_name("abc", None) == "abc"
    assert subscription_display_name("tpc_" + "a" * 32, "org_" + "b" * 16) == f"tpc_{'a' * 32} org_{'b' * 16}"
    assert len(subscription_display_name("tpc_" + "a" * 32, "org_" + "b" * 16)) <= 100  # APIM's limit


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=64),
       st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=64))
def test_organization_names_are_valid_for_auth0_and_distinct_for_distinct_ids(a, b):
    if not (CUSTOMER_ID.fullmatch(a) and CUSTOMER_ID.fullmatch(b)):
        return
    assert AUTH0_ORG_NAME.fullmatch(naming.organization_name(a))
    assert naming.organization_name(a) == naming.organization_name(a)
    if a != b:
        assert naming.organization_name(a) != naming.organization_name(b)
