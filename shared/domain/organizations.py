"""Customers as Auth0 Organizations: the event's branding, a profile's organization settings, and the organization
the app wants a customer to have (its desired state), with the rules Auth0 and the gateway set.

- **Branding** (``data.branding`` of ``customer.created``/``customer.updated``): ``logoUrl``, ``primaryColor``,
  ``pageBackgroundColor``. Auth0 stores it as ``branding.logo_url`` and ``branding.colors.primary`` /
  ``.page_background`` (``OrganizationBranding``, ``OrganizationBrandingColors``): the logo an https URL
  (``strict-https-uri-or-null``), the colours HTML colours that go together (``colors`` requires both). The app
  takes ``#RRGGBB`` (what Auth0's colour picker writes; the format's grammar is not published), and a logo URL
  that is an https URL of a public host without user info or fragment (the redirect URI rules), because the login
  page shows it to the customer's users from Auth0's domain: a host on their own network is refused. ``{}``
  clears the branding; a field left out of a ``customer.updated`` keeps the organization's.
- **Profile keys** (``config/client_profiles.toml``): ``organization`` (``"none"``, the default, or
  ``"per-customer"``); with per-customer, ``organization_usage`` (``"require"``, the default, or ``"allow"``; the
  grant's for client credentials, the application's for a login), ``organization_connections`` (connection names,
  at most 10, Auth0's limit per organization) and, for a profile that logs users in with usage require,
  ``organization_require_behavior`` (``pre_login_prompt`` or ``post_login_prompt``; ``no_prompt`` relies on the
  application sending ``organization``, which Auth0 says a third-party application cannot be relied on to do).
  ``deny`` would leave the organization out of every token, so a per-customer profile refuses it.
- **The gateway binding**: a customer that is an organization has its APIM subscription displayed as
  ``{client_id} {org_id}`` (:func:`subscription_display_name`; ``infra/policies/api.xml``).

Sources: Auth0's *Create Organizations*, *Machine-to-Machine Access for Organizations*, *Configure Your Application
for M2M Access*, *Enable Third-Party Application Access for an Organization* and *Entity Limit Policy*; the request
schemas in auth0-python 6.8 (``types/organization_branding*.py``, ``client_grant_organization_usage_enum.py``,
``client_organization_require_behavior_enum.py``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import naming
from .json_body import fail, key_path
from .redirect_uris import is_local, syntax_problem

ORGANIZATION_MODES = ("none", "per-customer")
USAGES = ("require", "allow")
REQUIRE_BEHAVIORS = ("pre_login_prompt", "post_login_prompt", "no_prompt")
#: Auth0's limits: connections per organization (Entity Limit Policy; "Max of 10 connections allowed"), and the
#: lengths of a display name and a logo URL the app accepts
MAX_CONNECTIONS = 10
MAX_DISPLAY_NAME = 255
MAX_LOGO_URL = 2000
PROFILE_KEYS = frozenset({"organization", "organization_usage", "organization_connections",
                          "organization_require_behavior"})
BRANDING_FIELDS = ("logoUrl", "primaryColor", "pageBackgroundColor")
HTML_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
#: Auth0 connection names: letters, digits and -, starting and ending with a letter or digit, at most 128
CONNECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,126}[A-Za-z0-9])?$")
#: the Management API scopes the calls of ``shared/adapters/auth0_organizations.py`` need; the tenant command
#: grants them to the app only when a profile uses organizations
ORGANIZATION_MANAGEMENT_SCOPES = (
    "read:organizations", "create:organizations", "update:organizations", "delete:organizations",
    "read:organization_connections", "create:organization_connections", "delete:organization_connections",
    "read:organization_client_grants", "create:organization_client_grants", "delete:organization_client_grants",
    "read:connections")


@dataclass(frozen=True)
class Branding:
    """An organization's branding; every field None: no branding."""
    logo_url: str | None = None
    primary_color: str | None = None
    page_background_color: str | None = None

    @property
    def empty(self) -> bool:
        return self.logo_url is None and self.primary_color is None

    def to_auth0(self) -> dict:
        """The Management API's ``branding`` object (``{}`` clears it)."""
        out: dict[str, Any] = {}
        if self.logo_url is not None:
            out["logo_url"] = self.logo_url
        if self.primary_color is not None:
            out["colors"] = {"primary": self.primary_color, "page_background": self.page_background_color}
        return out

    @classmethod
    def from_auth0(cls, branding: Any) -> "Branding":
        """From the Management API's answer: an auth0-python model, a dict or None. Colours compare without regard to
        case (``#0059d6`` is ``#0059D6``), so they are kept upper case."""
        def get(obj, name):
            return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)

        if branding is None:
            return cls()
        colors = get(branding, "colors")
        primary, background = (get(colors, "primary"), get(colors, "page_background")) if colors else (None, None)
        return cls(logo_url=get(branding, "logo_url") or None, primary_color=_upper(primary),
                   page_background_color=_upper(background))


def _upper(color: str | None) -> str | None:
    return color.upper() if isinstance(color, str) else None


def logo_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an organization's logo, or None."""
    if len(url) > MAX_LOGO_URL:
        return f"must be at most {MAX_LOGO_URL} characters"
    problem = syntax_problem(url)
    if problem:
        return problem
    if is_local(url):
        return ("points at the user's own machine or network (localhost, a private or loopback address, a name no "
                "public DNS serves); the login page would load it from there")
    return None


def parse_branding(value: Any, path: str = "data.branding") -> Branding:
    """``data.branding`` of an event; raises :class:`~shared.domain.errors.InvalidEvent` naming the field."""
    if not isinstance(value, dict):
        fail(path, "must be an object with logoUrl, primaryColor and pageBackgroundColor")
    for key in value:
        if key not in BRANDING_FIELDS:
            fail(key_path(path, key), f"is not a branding field (allowed: {', '.join(BRANDING_FIELDS)})")
    logo = value.get("logoUrl")
    if logo is not None:
        if not isinstance(logo, str):
            fail(f"{path}.logoUrl", "must be a string")
        problem = logo_url_problem(logo)
        if problem:
            fail(f"{path}.logoUrl", problem)
    colors = {}
    for key in ("primaryColor", "pageBackgroundColor"):
        color = value.get(key)
        if color is not None and (not isinstance(color, str) or not HTML_COLOR.fullmatch(color)):
            fail(f"{path}.{key}", "must be a colour written #RRGGBB (six hex digits), e.g. #0059D6")
        colors[key] = color
    if (colors["primaryColor"] is None) != (colors["pageBackgroundColor"] is None):
        missing = "pageBackgroundColor" if colors["pageBackgroundColor"] is None else "primaryColor"
        fail(f"{path}.{missing}", "is required with the other colour: Auth0 sets both colours together")
    return Branding(logo_url=logo, primary_color=_upper(colors["primaryColor"]),
                    page_background_color=_upper(colors["pageBackgroundColor"]))


@dataclass(frozen=True)
class OrganizationSettings:
    """A profile's organization keys, validated."""
    mode: str = "none"
    usage: str = "require"
    connections: tuple[str, ...] = ()
    require_behavior: str | None = None

    @property
    def per_customer(self) -> bool:
        return self.mode == "per-customer"


def organization_settings(raw: Mapping[str, Any], *, grant_types: tuple[str, ...] | list[str], first_party: bool,
                          where: str) -> tuple[OrganizationSettings, list[str]]:
    """The settings of a profile table ``raw`` and every problem found, each naming ``where`` (``profile 'oem'``)
    and the key, as ``shared/domain/profiles.py`` reports them."""
    problems: list[str] = []

    def check(cond: bool, msg: str) -> bool:
        if not cond:
            problems.append(f"{where}: {msg}")
        return bool(cond)

    mode = raw.get("organization", "none")
    if not check(mode in ORGANIZATION_MODES, f"organization must be one of {list(ORGANIZATION_MODES)}"):
        return OrganizationSettings(), problems
    if mode == "none":
        extra = sorted(k for k in PROFILE_KEYS - {"organization"} if k in raw)
        check(not extra, f"{', '.join(extra)} need organization = \"per-customer\"")
        return OrganizationSettings(), problems
    usage = raw.get("organization_usage", "require")
    check(usage in USAGES, f"organization_usage must be one of {list(USAGES)} with organization = \"per-customer\" "
                           "(deny would leave the organization out of every token)")
    connections = raw.get("organization_connections", [])
    if check(isinstance(connections, list) and all(isinstance(c, str) for c in connections),
             "organization_connections must be a list of connection names"):
        check(len(connections) <= MAX_CONNECTIONS,
              f"organization_connections: Auth0 enables at most {MAX_CONNECTIONS} connections per organization")
        check(len(set(connections)) == len(connections), "organization_connections names a connection twice")
        for name in connections:
            check(bool(CONNECTION_NAME.fullmatch(name)), f"organization_connections: {name!r} is not a connection "
                                                         "name (letters, digits and -, at most 128)")
    else:
        connections = []
    interactive = "authorization_code" in grant_types
    behavior = raw.get("organization_require_behavior")
    if behavior is not None:
        if check(interactive and usage == "require",
                 "organization_require_behavior applies to a profile that logs users in (authorization_code) with "
                 "organization_usage = \"require\""):
            check(behavior in REQUIRE_BEHAVIORS,
                  f"organization_require_behavior must be one of {list(REQUIRE_BEHAVIORS)}")
            check(first_party or behavior != "no_prompt",
                  "organization_require_behavior = \"no_prompt\" needs the application to send organization, which "
                  "a third-party application cannot be relied on to do (Auth0); use post_login_prompt")
    return OrganizationSettings(mode=mode, usage=usage, connections=tuple(connections),
                                require_behavior=behavior), problems


@dataclass(frozen=True)
class OrganizationSpec:
    """What the customer's organization should be: the desired state of the Organization resource. Its links (the
    enabled connections, the client grant association, the application's login) follow from ``settings``."""
    name: str
    display_name: str
    branding: Branding
    metadata: dict[str, str] = field(default_factory=dict)
    connections: tuple[str, ...] = ()
    usage: str = "require"
    require_behavior: str | None = None

    def differences(self, *, display_name: str | None, branding: Branding,
                    metadata: Mapping[str, str]) -> list[str]:
        """What an organization read back lacks of this spec, one phrase each (for drift reports)."""
        out = []
        if display_name != self.display_name:
            out.append(f"display name {display_name!r} instead of {self.display_name!r}")
        if branding != self.branding:
            out.append("branding differs")
        for key, value in self.metadata.items():
            if metadata.get(key) != value:
                out.append(f"metadata {key} is {metadata.get(key)!r} instead of {value!r}")
        return out


def desired_organization(customer_id: str, *, display_name: str, branding: Branding, profile: str,
                         settings: OrganizationSettings) -> OrganizationSpec:
    """The organization of ``customer_id``: named by the collision-free rule (``naming.organization_name``),
    displayed as the customer, and marked with the customer id and profile (hints; the ledger is the authority)."""
    return OrganizationSpec(name=naming.organization_name(customer_id), display_name=display_name[:MAX_DISPLAY_NAME],
                            branding=branding, metadata={"customer_id": customer_id, "profile": profile},
                            connections=settings.connections, usage=settings.usage,
                            require_behavior=settings.require_behavior)


def subscription_display_name(client_id: str, org_id: str | None) -> str:
    """The APIM subscription's display name the gateway binds tokens by: the client id, then the organization id."""
    return f"{client_id} {org_id}" if org_id else client_id
