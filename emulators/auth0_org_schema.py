"""The request schema of Auth0's Organizations as the stand-in enforces it: properties, formats, enumerations,
limits, and the error texts Auth0 answers with (``auth0_organizations.py`` serves the calls).

Sources: the Management API's request schemas (``CreateOrganizationRequestContent``,
``UpdateOrganizationRequestContent``, ``OrganizationBranding``, ``OrganizationBrandingColors``,
``OrganizationMetadata``, ``ConnectionForOrganization``) as published with the Management API reference and as
generated into auth0-python 6.8 (``organizations/raw_client.py``, ``types/``); Auth0's *Create Organizations* page
for the name rule ("lowercase alphabetical characters, numbers, underscores (_), and dashes (-). Can start with a
number", 1-50 characters); Auth0's *Entity Limit Policy* for the limits; answers recorded from a real tenant in
go-auth0's test recordings for the 404 text (``No organization found by that id or name``, no errorCode), ids
(``org_`` and 16 letters and digits) and the ``is_signup_enabled`` rule.

Not published, and chosen here: the grammar of the ``html-color`` format (the stand-in takes ``#RRGGBB``, what the
dashboard's colour picker produces), what ``strict-https-uri-or-null`` admits beyond an absolute https URL, and the
texts of a duplicate name (409) and of an entity limit (403, as for applications).
"""
from __future__ import annotations

import re

from .auth0_schema import URL_SHAPE, expect_type, payload_error, port_in_range

ORG_CREATE_PROPS = frozenset({"name", "display_name", "branding", "metadata", "enabled_connections", "token_quota",
                              "third_party_client_access", "is_app_entitlement_active"})
ORG_UPDATE_PROPS = frozenset({"name", "display_name", "branding", "metadata", "token_quota",
                              "third_party_client_access", "is_app_entitlement_active"})
#: accepted by Auth0 (Early Access features) but not implemented: refused, so that a caller relying on one notices
NOT_IMPLEMENTED = ("token_quota", "is_app_entitlement_active")
CONNECTION_PROPS = frozenset({"connection_id", "assign_membership_on_login", "show_as_button", "is_signup_enabled"})
CONNECTION_OPTIONS = ("assign_membership_on_login", "show_as_button", "is_signup_enabled")

NAME_FORMAT = re.compile(r"^[a-z0-9_-]+$")
NAME_MAX, DISPLAY_NAME_MAX = 50, 255
HTML_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
METADATA_MAX_KEYS, METADATA_MAX_VALUE = 25, 255
#: "Connections that will be enabled for this organization ... (Max of 10 connections allowed)"
MAX_CONNECTIONS = 10
#: Entity Limit Policy, "Global Subscription Plan Limits": Organizations per tenant 100,000; M2M client grants per
#: organization 100 (public cloud; 1000 on private cloud)
MAX_ORGANIZATIONS = 100_000
MAX_CLIENT_GRANTS_PER_ORGANIZATION = 100

USAGE = ("deny", "allow", "require")
REQUIRE_BEHAVIOR = ("no_prompt", "pre_login_prompt", "post_login_prompt")
THIRD_PARTY_ACCESS = ("block", "allow")
DEFAULT_ORG_FLOWS = ("client_credentials",)

NOT_FOUND = "No organization found by that id or name"
DUPLICATE_NAME = "An organization with this name already exists."


def _enum(value, allowed, prop: str, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    expect_type(value, "string", prop)
    if value not in allowed:
        raise payload_error(f'No enum match for: "{value}"', prop)


def _closed_object(value, allowed: frozenset, prop: str) -> None:
    expect_type(value, "object", prop)
    extra = [k for k in value if k not in allowed]
    if extra:
        raise payload_error(f"Additional properties not allowed: {','.join(extra)}", prop)


def _check_length(value, maximum: int, prop: str) -> None:
    expect_type(value, "string", prop)
    if not value:
        raise payload_error("String is too short (0 chars), minimum 1", prop)
    if len(value) > maximum:
        raise payload_error(f"String is too long ({len(value)} chars), maximum {maximum}", prop)


def check_name(name, prop: str = "name") -> None:
    _check_length(name, NAME_MAX, prop)
    if not NAME_FORMAT.fullmatch(name):
        raise payload_error(f"Object didn't pass validation for format organization-name: {name}", prop)


def check_branding(branding) -> None:
    _closed_object(branding, frozenset({"logo_url", "colors"}), "branding")
    if "logo_url" in branding:
        url = branding["logo_url"]
        expect_type(url, "string", "branding.logo_url")
        if not url.startswith("https://") or not URL_SHAPE.match(url) or not port_in_range(url):
            raise payload_error(f"Object didn't pass validation for format strict-https-uri-or-null: {url}",
                                "branding.logo_url")
    if "colors" in branding:
        colors = branding["colors"]
        _closed_object(colors, frozenset({"primary", "page_background"}), "branding.colors")
        for key in ("primary", "page_background"):
            if key not in colors:
                raise payload_error(f"Missing required property: {key}", "branding.colors")
            expect_type(colors[key], "string", f"branding.colors.{key}")
            if not HTML_COLOR.fullmatch(colors[key]):
                raise payload_error(f"Object didn't pass validation for format html-color: {colors[key]}",
                                    f"branding.colors.{key}")


def check_metadata(metadata, merged: dict | None = None) -> None:
    """``merged``: the metadata the update would leave, whose size is the one limited."""
    expect_type(metadata, "object", "metadata")
    for key, value in metadata.items():
        if value is None:
            continue
        expect_type(value, "string", f"metadata.{key[:40]}")
        if len(value) > METADATA_MAX_VALUE:
            raise payload_error(f"String is too long ({len(value)} chars), maximum {METADATA_MAX_VALUE}",
                                f"metadata.{key[:40]}")
    count = len(merged if merged is not None else metadata)
    if count > METADATA_MAX_KEYS:
        raise payload_error(f"Too many properties defined ({count}), maximum {METADATA_MAX_KEYS}", "metadata")


def check_connection(item, prop: str | None = None, *, with_id: bool = True) -> None:
    """A ``ConnectionForOrganization`` (add; ``prop``: where it is in the body, None for the whole body), or its
    options alone (``with_id=False``: update)."""
    def member(name: str) -> str:
        return f"{prop}.{name}" if prop else name

    _closed_object(item, CONNECTION_PROPS if with_id else frozenset(CONNECTION_OPTIONS), prop)
    if with_id:
        if "connection_id" not in item:
            raise payload_error("Missing required property: connection_id", prop)
        expect_type(item["connection_id"], "string", member("connection_id"))
    for option in CONNECTION_OPTIONS:
        if option in item:
            expect_type(item[option], "boolean", member(option))


def check_org_body(body, allowed: frozenset, *, creating: bool) -> dict:
    expect_type(body, "object", None)
    extra = [k for k in body if k not in allowed]
    if extra:
        raise payload_error(f"Additional properties not allowed: {','.join(extra)}")
    if creating and "name" not in body:
        raise payload_error("Missing required property: name")
    if "name" in body:
        check_name(body["name"])
    if "display_name" in body:
        _check_length(body["display_name"], DISPLAY_NAME_MAX, "display_name")
    if "branding" in body:
        check_branding(body["branding"])
    if "third_party_client_access" in body:
        _enum(body["third_party_client_access"], THIRD_PARTY_ACCESS, "third_party_client_access")
    if "enabled_connections" in body:
        expect_type(body["enabled_connections"], "array", "enabled_connections")
        if len(body["enabled_connections"]) > MAX_CONNECTIONS:
            raise payload_error(f"Array is too long ({len(body['enabled_connections'])}), maximum {MAX_CONNECTIONS}",
                                "enabled_connections")
        for i, item in enumerate(body["enabled_connections"]):
            check_connection(item, f"enabled_connections[{i}]")
    return body


def check_client_organization_props(body: dict, *, creating: bool) -> None:
    """A client's organization properties (create: auth0-python's ``Client*Enum``; update: the ``*PatchEnum`` ones,
    which take null to unset)."""
    if "organization_usage" in body:
        _enum(body["organization_usage"], USAGE, "organization_usage", nullable=not creating)
    if "organization_require_behavior" in body:
        _enum(body["organization_require_behavior"], REQUIRE_BEHAVIOR, "organization_require_behavior",
              nullable=not creating)
    if "default_organization" in body and not (body["default_organization"] is None and not creating):
        default = body["default_organization"]
        _closed_object(default, frozenset({"organization_id", "flows"}), "default_organization")
        for key in ("organization_id", "flows"):
            if key not in default:
                raise payload_error(f"Missing required property: {key}", "default_organization")
        expect_type(default["organization_id"], "string", "default_organization.organization_id")
        expect_type(default["flows"], "array", "default_organization.flows")
        for i, flow in enumerate(default["flows"]):
            _enum(flow, DEFAULT_ORG_FLOWS, f"default_organization.flows[{i}]")


def check_grant_organization_props(body: dict, *, creating: bool) -> None:
    """``organization_usage`` of a client grant: ``ClientGrantOrganizationUsageEnum`` on create, the nullable one on
    update (null: back to the default, deny)."""
    if "organization_usage" in body:
        _enum(body["organization_usage"], USAGE, "organization_usage", nullable=not creating)
