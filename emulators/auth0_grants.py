"""The Auth0 stand-in's client grants: ``/api/v2/client-grants`` (create, get, list, update, delete) and the
organizations a grant is associated with (``GET /api/v2/client-grants/{id}/organizations``).

A mixin of :class:`emulators.auth0.Auth0StandIn`; it expects ``self.grants`` (grant id -> record),
``self.clients``, ``self.organizations``, ``self.org_grants`` and ``self.apis``.

Organizations on a grant (Auth0, *Machine-to-Machine Access for Organizations*): ``organization_usage`` is deny (the
default: the application must not use organizations), allow or require, for the Client Credentials Flow to that API;
``allow_any_organization`` lets it use any organization without an association. "Third-party applications cannot
use allow_any_organization, so each Organization must be explicitly authorized": the stand-in refuses it on a
third-party client's grant (Auth0's error text is not published; this one follows its error body shape).

Operation names: ``client_grants.create`` ``.get`` ``.list`` ``.update`` ``.delete`` ``.organizations``.
"""
from __future__ import annotations

from .auth0_org_schema import check_grant_organization_props
from .auth0_schema import (ALNUM, GRANT_CREATE_PROPS, GRANT_UPDATE_PROPS, expect_type, json_type, payload_error,
                          random_string)
from .http_standin import HttpError, Request, Response, route


class GrantRoutes:
    def _api_scopes(self, audience: str) -> list[str]:
        if audience == self.management_audience:
            return list(self.management_scopes)
        if audience not in self.apis:
            # "Not Found: No resource with identifier ..." (auth0/auth0-deploy-cli#29)
            raise HttpError(404, "inexistent_resource_server", f"No resource with identifier {audience}")
        return self.apis[audience]

    def _validate_grant_body(self, body, allowed: frozenset, audience: str | None) -> dict:
        if not isinstance(body, dict):
            raise payload_error(f"Expected type object but found type {json_type(body)}")
        if audience is None and "audience" not in body:
            raise payload_error("Missing required property: audience")
        extra = [k for k in body if k not in allowed]
        if extra:
            raise payload_error(f"Additional properties not allowed: {','.join(extra)}")
        for prop in ("client_id", "audience"):
            if prop in body:
                expect_type(body[prop], "string", prop)
        for prop in ("allow_any_organization", "allow_all_scopes"):
            if prop in body:
                expect_type(body[prop], "boolean", prop)
        if "scope" in body:
            expect_type(body["scope"], "array", "scope")
            for i, s in enumerate(body["scope"]):
                expect_type(s, "string", f"scope[{i}]")
                if not s:
                    raise payload_error("String is too short (0 chars), minimum 1", f"scope[{i}]")
        if body.get("subject_type", "client") not in ("client", "user"):
            raise payload_error(f'No enum match for: "{body["subject_type"]}"', "subject_type")
        check_grant_organization_props(body, creating=audience is None)
        return body

    @staticmethod
    def _check_any_organization(client: dict, grant: dict) -> None:
        if grant.get("allow_any_organization") and not client.get("is_first_party", True):
            # "Third-party applications cannot use allow_any_organization, so each Organization must be explicitly
            # authorized" (Auth0, Machine-to-Machine Access for Organizations)
            raise HttpError(400, "invalid_body", "Third-party clients cannot use allow_any_organization: associate "
                                                 "each organization with the client grant instead")

    def _drop_grants(self, doomed) -> None:
        """Delete the grants ``doomed(grant)`` is true of, and their organization associations with them."""
        gone = {gid for gid, g in self.grants.items() if doomed(g)}
        self.grants = {gid: g for gid, g in self.grants.items() if gid not in gone}
        self.org_grants = [a for a in self.org_grants if a["grant_id"] not in gone]

    def _check_scopes(self, audience: str, scope: list[str]) -> None:
        defined = self._api_scopes(audience)
        unknown = [s for s in scope if s not in defined]
        if unknown:
            raise HttpError(400, "invalid_scope",
                            f"The following scopes are not defined by the resource server {audience}: "
                            f"{','.join(unknown)}")

    def _grant(self, grant_id: str) -> dict:
        grant = self.grants.get(grant_id)
        if grant is None:
            raise HttpError(404, "inexistent_client_grant", "The client grant does not exist")
        return grant

    @staticmethod
    def _grant_view(grant: dict) -> dict:
        return {k: v for k, v in grant.items() if not k.startswith("_")}

    @route("POST", r"/api/v2/client-grants", "client_grants.create")
    def create_grant(self, req: Request) -> Response:
        body = self._validate_grant_body(req.json(), GRANT_CREATE_PROPS, audience=None)
        if "client_id" not in body and "default_for" not in body:
            raise payload_error("Missing required property: client_id")
        if "default_for" in body:
            raise HttpError(400, "invalid_body", "The stand-in does not implement default_for grants")
        client = self._client(body["client_id"])
        scope = list(body.get("scope", []))
        self._check_scopes(body["audience"], scope)
        if body["audience"] == self.management_audience and not client.get("is_first_party", True):
            # "Third-party applications cannot be granted access to system APIs such as the Management API"
            # (https://auth0.com/docs/get-started/applications/third-party-applications/security-controls)
            raise HttpError(400, "invalid_body", "Third-party clients cannot be granted access to the Management API")
        if any(g["client_id"] == body["client_id"] and g["audience"] == body["audience"] for g in self.grants.values()):
            raise HttpError(409, "client_grant_conflict", "A client grant for this client and audience already exists.")
        grant = {"id": f"cgr_{random_string(ALNUM, 16)}", "client_id": body["client_id"], "audience": body["audience"],
                 "scope": scope, "allow_any_organization": body.get("allow_any_organization", False),
                 "is_system": False, "subject_type": body.get("subject_type", "client")}
        for opt in ("organization_usage", "authorization_details_types", "allow_all_scopes"):
            if opt in body:
                grant[opt] = body[opt]
        self._check_any_organization(client, grant)
        self._seq += 1
        grant["_seq"] = self._seq
        self.grants[grant["id"]] = grant
        return Response(201, self._grant_view(grant))

    @route("GET", r"/api/v2/client-grants/(?P<id>[^/]+)", "client_grants.get")
    def get_grant(self, req: Request) -> Response:
        return Response(200, self._grant_view(self._grant(req.params["id"])))

    @route("PATCH", r"/api/v2/client-grants/(?P<id>[^/]+)", "client_grants.update")
    def update_grant(self, req: Request) -> Response:
        grant = self._grant(req.params["id"])
        body = self._validate_grant_body(req.json() or {}, GRANT_UPDATE_PROPS, audience=grant["audience"])
        if "scope" in body:
            self._check_scopes(grant["audience"], body["scope"])
        updated = {**grant, **body}
        if updated.get("organization_usage", "") is None:
            del updated["organization_usage"]  # null: back to the default, deny
        client = self.clients.get(grant["client_id"])
        if client is not None:
            self._check_any_organization(client, updated)
        self.grants[grant["id"]] = updated
        return Response(200, self._grant_view(updated))

    @route("DELETE", r"/api/v2/client-grants/(?P<id>[^/]+)", "client_grants.delete")
    def delete_grant(self, req: Request) -> Response:
        grant = self._grant(req.params["id"])
        self._drop_grants(lambda g: g["id"] == grant["id"])
        return Response(204)

    @route("GET", r"/api/v2/client-grants", "client_grants.list")
    def list_grants(self, req: Request) -> Response:
        self._check_query(req, {"page", "per_page", "include_totals", "from", "take", "audience", "client_id",
                                "allow_any_organization", "subject_type", "default_for"})
        aud, cid, subject = req.arg("audience"), req.arg("client_id"), req.arg("subject_type")
        any_org = self._bool_arg(req, "allow_any_organization", None)
        matching = [g for g in sorted(self.grants.values(), key=lambda g: g["_seq"])
                    if (aud is None or g["audience"] == aud) and (cid is None or g["client_id"] == cid)
                    and (subject is None or g.get("subject_type") == subject)
                    and (any_org is None or g.get("allow_any_organization", False) == any_org)]
        if req.arg("default_for") is not None:
            matching = []  # default_for grants are not implemented, so none exist
        # Checkpoint pagination answers {client_grants, next} (ListClientGrantPaginatedResponseContent in
        # auth0-python 6.8); offset paging is off unless page or per_page is sent.
        return self._paged(req, matching, "client_grants", self._grant_view, "cgr", paging_off_by_default=True)

    @route("GET", r"/api/v2/client-grants/(?P<id>[^/]+)/organizations", "client_grants.organizations")
    def list_grant_organizations(self, req: Request) -> Response:
        self._check_query(req, {"page", "per_page", "include_totals", "from", "take"})
        grant = self._grant(req.params["id"])
        orgs = [self.organizations[a["organization_id"]] for a in self.org_grants if a["grant_id"] == grant["id"]]
        return self._paged(req, sorted(orgs, key=lambda o: o["_seq"]), "organizations", self._org_view, "org")
