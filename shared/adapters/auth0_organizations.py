"""Auth0 Organizations over auth0-python 6.x: a customer's organization (name, display name, branding, metadata),
its enabled connections, and the client grants associated with it (Machine-to-Machine Access for Organizations).

It rides on an :class:`~shared.adapters.auth0_identity.Auth0IdentityProvider`: the same Management API token, the
same httpx client, the same pacing on the tenant's rate-limit headers (the limit is the tenant's, whatever the
endpoint) and the same error classification: 429, 5xx, timeouts -> TransientError; other 4xx -> PermanentError with
Auth0's message; every SDK call with ``max_retries=0`` (a retried POST could make a second organization; retrying is
the pipeline's, and the create's is the service layer's, through ``get_organization_by_name``).

Typed answers instead of exceptions for what a reconciliation expects to meet:

- ``None`` / ``False`` for an organization (or a grant, or a link) that does not exist (404);
- :data:`APPLIED` when a call changed the tenant, :data:`ALREADY` when the tenant had it already (409: an enabled
  connection, an association, or with ``create_organization`` the name taken, which it answers with ``None``),
  :data:`ABSENT` when the organization or the grant it names does not exist.

Limits are Auth0's (Entity Limit Policy): a 403 ``too_many_entities`` (organizations per tenant, client grants or
connections per organization) is a PermanentError naming the limit; the service layer checks the counts before any
side effect, like the application limit, so this is the last line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auth0.management.types import OrganizationBranding, OrganizationBrandingColors

from ..domain.organizations import Branding, OrganizationSpec
from .auth0_identity import _ABSENT, NO_RETRIES, PER_PAGE, Auth0IdentityProvider

APPLIED, ALREADY, ABSENT = "applied", "already", "absent"


@dataclass(frozen=True)
class Organization:
    org_id: str
    name: str
    display_name: str | None
    branding: Branding
    metadata: dict[str, str]


@dataclass(frozen=True)
class EnabledConnection:
    connection_id: str
    name: str | None
    assign_membership_on_login: bool


def _organization(found: Any) -> Organization:
    return Organization(org_id=found.id, name=found.name or "", display_name=found.display_name,
                        branding=Branding.from_auth0(found.branding),
                        metadata={str(k): str(v) for k, v in (found.metadata or {}).items() if v is not None})


def _sdk_branding(branding: Branding) -> OrganizationBranding:
    # Only the members that are set: the SDK sends a member given as None as null, and clearing is an empty object.
    members: dict[str, Any] = {}
    if branding.logo_url is not None:
        members["logo_url"] = branding.logo_url
    if branding.primary_color is not None:
        members["colors"] = OrganizationBrandingColors(primary=branding.primary_color,
                                                       page_background=branding.page_background_color)
    return OrganizationBranding(**members)


class Auth0Organizations:
    def __init__(self, provider: Auth0IdentityProvider):
        self.provider = provider
        # One Management API connection per app: the provider's call wrapper (pacing, token refresh, classification)
        # and SDK client.
        self._call = provider._call
        self._mgmt = provider._mgmt

    # -- organizations ---------------------------------------------------------------------------------------------
    def create_organization(self, spec: OrganizationSpec) -> Organization | None:
        """The new organization, or None when its name is taken (409): the caller reads it by name and decides
        whether it is the customer's (its metadata says whose it claims to be; the ledger decides)."""
        body: dict[str, Any] = dict(name=spec.name, display_name=spec.display_name, metadata=dict(spec.metadata))
        if not spec.branding.empty:
            body["branding"] = _sdk_branding(spec.branding)
        created = self._call("create_organization",
                             lambda: self._mgmt.organizations.create(**body, request_options=NO_RETRIES),
                             absent_on=(409,))
        return None if created is _ABSENT else _organization(created)

    def get_organization(self, org_id: str) -> Organization | None:
        found = self._call("get_organization",
                           lambda: self._mgmt.organizations.get(org_id, request_options=NO_RETRIES), absent_on=(404,))
        return None if found is _ABSENT else _organization(found)

    def get_organization_by_name(self, name: str) -> Organization | None:
        found = self._call("get_organization",
                           lambda: self._mgmt.organizations.get_by_name(name, request_options=NO_RETRIES),
                           absent_on=(404,))
        return None if found is _ABSENT else _organization(found)

    def list_organizations(self) -> list[Organization]:
        """Every organization of the tenant (checkpoint paging; each page paced and classified)."""
        pager = self._call("list_organizations",
                           lambda: self._mgmt.organizations.list(take=PER_PAGE, request_options=NO_RETRIES))
        found: list[Organization] = []
        while pager is not None:
            found.extend(_organization(o) for o in pager.items or [])
            if not pager.has_next or not pager.items:
                break
            pager = self._call("list_organizations", pager.next_page)
        return found

    def update_organization(self, org_id: str, *, display_name: str | None = None, branding: Branding | None = None,
                            metadata: dict[str, str | None] | None = None) -> Organization | None:
        """Only what is given changes: the branding as a whole (``Branding()`` clears it), metadata merged (a None
        value removes a key). None: the organization does not exist."""
        body: dict[str, Any] = {}
        if display_name is not None:
            body["display_name"] = display_name
        if branding is not None:
            body["branding"] = _sdk_branding(branding)
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if not body:
            return self.get_organization(org_id)
        updated = self._call("update_organization",
                             lambda: self._mgmt.organizations.update(org_id, **body, request_options=NO_RETRIES),
                             absent_on=(404,))
        return None if updated is _ABSENT else _organization(updated)

    def delete_organization(self, org_id: str) -> bool:
        """False: it was already gone. Auth0 removes its enabled connections and grant associations with it."""
        return self._done("delete_organization",
                          lambda: self._mgmt.organizations.delete(org_id, request_options=NO_RETRIES))

    # -- connections -----------------------------------------------------------------------------------------------
    def connection_ids(self, names: tuple[str, ...] | list[str]) -> dict[str, str]:
        """Connection name -> id for the names the tenant has; a name missing from the answer does not exist."""
        out: dict[str, str] = {}
        for name in names:
            pager = self._call("list_connections",
                               lambda n=name: self._mgmt.connections.list(name=n, take=PER_PAGE,
                                                                          request_options=NO_RETRIES))
            match = next((c for c in pager.items or [] if c.name == name), None)
            if match is not None:
                out[name] = match.id
        return out

    def list_enabled_connections(self, org_id: str) -> list[EnabledConnection] | None:
        found = self._call("list_organization_connections",
                           lambda: self._mgmt.organizations.enabled_connections.list(
                               org_id, per_page=PER_PAGE, include_totals=True, request_options=NO_RETRIES),
                           absent_on=(404,))
        if found is _ABSENT:
            return None
        return [EnabledConnection(connection_id=c.connection_id, name=c.connection.name if c.connection else None,
                                  assign_membership_on_login=bool(c.assign_membership_on_login))
                for c in found.items or []]

    def enable_connection(self, org_id: str, connection_id: str, *, assign_membership_on_login: bool = False) -> str:
        """APPLIED, ALREADY (it was enabled), or ABSENT (no such organization or connection)."""
        return self._link("enable_organization_connection",
                          lambda: self._mgmt.organizations.enabled_connections.add(
                              org_id, connection_id=connection_id,
                              assign_membership_on_login=assign_membership_on_login, request_options=NO_RETRIES),
                          org_id, lambda: any(c.connection_id == connection_id
                                              for c in self.list_enabled_connections(org_id) or []))

    def disable_connection(self, org_id: str, connection_id: str) -> bool:
        return self._done("disable_organization_connection",
                          lambda: self._mgmt.organizations.enabled_connections.delete(
                              org_id, connection_id, request_options=NO_RETRIES))

    # -- client grants (machine-to-machine access) -------------------------------------------------------------------
    def list_client_grant_ids(self, org_id: str) -> tuple[str, ...] | None:
        """The grants associated with the organization; None: it does not exist."""
        ids: list[str] = []
        page = 0
        while True:
            # Page by page: the SDK's pager asks for one page more than there is, and the total says where to stop.
            pager = self._call("list_organization_client_grants",
                               lambda p=page: self._mgmt.organizations.client_grants.list(
                                   org_id, page=p, per_page=PER_PAGE, include_totals=True,
                                   request_options=NO_RETRIES),
                               absent_on=(404,))
            if pager is _ABSENT:
                return None
            grants = pager.items or []
            ids.extend(g.id for g in grants)
            total = getattr(pager.response, "total", None)
            page += 1
            if len(grants) < PER_PAGE or (total is not None and len(ids) >= total):
                return tuple(ids)

    def associate_client_grant(self, org_id: str, grant_id: str) -> str:
        """APPLIED, ALREADY (it was associated), or ABSENT (no such organization or grant)."""
        return self._link("associate_organization_client_grant",
                          lambda: self._mgmt.organizations.client_grants.create(
                              org_id, grant_id=grant_id, request_options=NO_RETRIES),
                          org_id, lambda: grant_id in (self.list_client_grant_ids(org_id) or ()))

    def dissociate_client_grant(self, org_id: str, grant_id: str) -> bool:
        return self._done("dissociate_organization_client_grant",
                          lambda: self._mgmt.organizations.client_grants.delete(
                              org_id, grant_id, request_options=NO_RETRIES))

    def grant_organization_ids(self, grant_id: str) -> tuple[str, ...] | None:
        """The organizations a grant is associated with (a drift check's view from the grant's side: an
        association with another customer's organization shows here). None: the grant does not exist."""
        pager = self._call("list_client_grant_organizations",
                           lambda: self._mgmt.client_grants.organizations.list(grant_id, take=PER_PAGE,
                                                                               request_options=NO_RETRIES),
                           absent_on=(404,))
        if pager is _ABSENT:
            return None
        ids: list[str] = []
        while pager is not None:
            ids.extend(o.id for o in pager.items or [])
            if not pager.has_next or not pager.items:
                break
            pager = self._call("list_client_grant_organizations", pager.next_page)
        return tuple(ids)

    def set_grant_organization_usage(self, grant_id: str, usage: str | None) -> bool:
        """``organization_usage`` of a client grant (None: back to Auth0's default, deny). ``allow_any_organization``
        is never set: third-party applications cannot use it, and the app authorizes each organization explicitly.
        False: the grant does not exist."""
        return self._done("update_client_grant",
                          lambda: self._mgmt.client_grants.update(grant_id, organization_usage=usage,
                                                                  request_options=NO_RETRIES))

    # -- the application's side ------------------------------------------------------------------------------------
    def set_application_organizations(self, client_id: str, *, usage: str | None,
                                      require_behavior: str | None = None,
                                      default_organization: str | None = None) -> bool:
        """How the application uses organizations: at login (``organization_usage``, ``organization_require_behavior``)
        and, for client credentials, the organization applied when a token request names none and the grant
        requires one (``default_organization``). None unsets each. False: the application does not exist."""
        default = None if default_organization is None else {"organization_id": default_organization,
                                                            "flows": ["client_credentials"]}
        return self._done("update_application",
                          lambda: self._mgmt.clients.update(client_id, organization_usage=usage,
                                                            organization_require_behavior=require_behavior,
                                                            default_organization=default,
                                                            request_options=NO_RETRIES))

    def org_names_in_tokens(self) -> bool:
        """The tenant setting that adds ``org_name`` to tokens (needs ``read:tenant_settings``)."""
        found = self._call("get_tenant_settings",
                           lambda: self._mgmt.tenants.settings.get(request_options=NO_RETRIES))
        return bool(getattr(found, "allow_organization_name_in_authentication_api", False))

    # -- plumbing --------------------------------------------------------------------------------------------------
    def _done(self, operation: str, fn) -> bool:
        """Run a call that changes one thing; False: it (or what it names) does not exist (404)."""
        return self._call(operation, fn, absent_on=(404,)) is not _ABSENT

    def _link(self, operation: str, fn, org_id: str, present) -> str:
        """Add a link to the organization: APPLIED; after a 404 or 409, ABSENT when the organization (or what the
        link names) is missing, else ALREADY (``present()`` reads the organization's links)."""
        if self._call(operation, fn, absent_on=(404, 409)) is not _ABSENT:
            return APPLIED
        if self.get_organization(org_id) is None:
            return ABSENT
        return ALREADY if present() else ABSENT

