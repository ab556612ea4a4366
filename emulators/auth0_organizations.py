"""The Auth0 stand-in's Organizations: ``/api/v2/organizations`` (create, list, get by id or name, update,
delete), their enabled connections and their client-grant associations (machine-to-machine access).

A mixin of :class:`emulators.auth0.Auth0StandIn`; it expects ``self.organizations`` (id -> record),
``self.org_connections`` and ``self.org_grants`` (association records), ``self.connections``, ``self.grants`` and
the limits ``self.max_organizations`` / ``self.max_org_client_grants``. Validation and texts: ``auth0_org_schema``.

Shapes, as the Management API answers them (auth0-python 6.8 types; answers recorded from a real tenant):

- an organization: ``{id, name, display_name, branding, metadata, third_party_client_access}``, the members that
  are set; ``id`` is ``org_`` and 16 letters and digits; branding is replaced as a whole by an update, metadata is
  merged (a null value removes a key, as for ``client_metadata``);
- an enabled connection: ``{connection_id, assign_membership_on_login, show_as_button, is_signup_enabled,
  connection: {name, strategy}}`` (``is_signup_enabled`` for database connections only);
- an associated client grant: the grant (``{id, client_id, audience, scope, organization_usage,
  allow_any_organization}``).

Deleting an organization removes its enabled connections and associations; deleting a client grant (or its client,
or its API) removes its associations. Entity limits (Entity Limit Policy): organizations per tenant
(``max_organizations``, 100,000) and M2M client grants per organization (``max_org_client_grants``, 100 on public
cloud), refused with 403 before anything changes; connections per organization (10).

Operation names: ``organizations.create`` ``.list`` ``.get`` ``.get_by_name`` ``.update`` ``.delete``,
``organizations.connections.list`` ``.add`` ``.get`` ``.update`` ``.delete``,
``organizations.client_grants.list`` ``.create`` ``.delete``.
"""
from __future__ import annotations

from .auth0_org_schema import (CONNECTION_OPTIONS, DUPLICATE_NAME, MAX_CONNECTIONS, NOT_FOUND, NOT_IMPLEMENTED,
                               ORG_CREATE_PROPS, ORG_UPDATE_PROPS, check_connection, check_metadata, check_org_body)
from .auth0_schema import ALNUM, payload_error, random_string
from .http_standin import HttpError, Request, Response, route

ORGANIZATION_SCOPES = {
    "organizations.create": ("create:organizations",),
    "organizations.list": ("read:organizations", "read:organizations_summary"),
    "organizations.get": ("read:organizations",),
    "organizations.get_by_name": ("read:organizations",),
    "organizations.update": ("update:organizations",),
    "organizations.delete": ("delete:organizations",),
    "organizations.connections.list": ("read:organization_connections",),
    "organizations.connections.get": ("read:organization_connections",),
    "organizations.connections.add": ("create:organization_connections",),
    "organizations.connections.update": ("update:organization_connections",),
    "organizations.connections.delete": ("delete:organization_connections",),
    "organizations.client_grants.list": ("read:organization_client_grants",),
    "organizations.client_grants.create": ("create:organization_client_grants",),
    "organizations.client_grants.delete": ("delete:organization_client_grants",),
    "client_grants.organizations": ("read:organization_client_grants",),
}
_ORG = r"/api/v2/organizations/(?P<id>[^/]+)"


class OrganizationRoutes:
    # -- records ---------------------------------------------------------------------------------------------------
    def _org(self, key: str) -> dict:
        org = self.organizations.get(key)
        if org is None:
            raise HttpError(404, "inexistent_organization", NOT_FOUND, no_error_code=True)
        return org

    @staticmethod
    def _org_view(org: dict) -> dict:
        return {k: v for k, v in org.items() if not k.startswith("_")}

    def _org_connection_view(self, link: dict) -> dict:
        connection = self.connections.get(link["connection_id"]) or {}
        out = {k: v for k, v in link.items() if k != "organization_id" and not k.startswith("_")}
        out["connection"] = {"name": connection.get("name"), "strategy": connection.get("strategy")}
        return out

    def _refuse_not_implemented(self, body: dict) -> None:
        for prop in NOT_IMPLEMENTED:
            if prop in body:
                raise HttpError(400, "invalid_body", f"The stand-in does not implement {prop}")

    def _check_unique_name(self, name: str, except_id: str | None = None) -> None:
        if any(o["name"] == name and o["id"] != except_id for o in self.organizations.values()):
            raise HttpError(409, "conflict", DUPLICATE_NAME)

    def _new_link(self, org_id: str, item: dict) -> dict:
        """An enabled connection, checked against the connection it names and Auth0's signup rule."""
        connection = self.connections.get(item["connection_id"])
        if connection is None:
            raise HttpError(404, "inexistent_connection", "No connection found by that id", no_error_code=True)
        link = {"organization_id": org_id, "connection_id": connection["id"],
                "assign_membership_on_login": item.get("assign_membership_on_login", False),
                "show_as_button": item.get("show_as_button", True)}
        if connection.get("strategy") == "auth0":
            link["is_signup_enabled"] = item.get("is_signup_enabled", False)
        self._check_signup_rule(link, connection)
        return link

    @staticmethod
    def _check_signup_rule(link: dict, connection: dict) -> None:
        signup = link.get("is_signup_enabled", False)
        if signup and (connection.get("strategy") != "auth0" or not link.get("assign_membership_on_login")):
            raise HttpError(400, "invalid_body", "Only database connections with assign_membership_on_login = true "
                                                 "support is_signup_enabled = true.")

    def _drop_organization_links(self, org_id: str) -> None:
        self.org_connections = [c for c in self.org_connections if c["organization_id"] != org_id]
        self.org_grants = [a for a in self.org_grants if a["organization_id"] != org_id]

    # -- organizations ---------------------------------------------------------------------------------------------
    @route("POST", r"/api/v2/organizations", "organizations.create")
    def create_organization(self, req: Request) -> Response:
        body = check_org_body(req.json(), ORG_CREATE_PROPS, creating=True)
        self._refuse_not_implemented(body)
        if "metadata" in body:
            check_metadata(body["metadata"])
        self._check_unique_name(body["name"])
        if self.max_organizations is not None and len(self.organizations) >= self.max_organizations:
            raise HttpError(403, "too_many_entities",
                            f"You reached the limit of {self.max_organizations} organizations for this tenant "
                            "(entity limit). Delete unused organizations or contact support to raise it.")
        while True:
            org_id = f"org_{random_string(ALNUM, 16)}"
            if org_id not in self.organizations:
                break
        links = [self._new_link(org_id, item) for item in body.get("enabled_connections", [])]
        ids = [link["connection_id"] for link in links]
        if len(set(ids)) != len(ids):
            raise payload_error("Connections must be unique", "enabled_connections")
        self._seq += 1
        org = {"id": org_id, "name": body["name"], "_seq": self._seq}
        for prop in ("display_name", "branding", "third_party_client_access"):
            if prop in body:
                org[prop] = body[prop]
        metadata = {k: v for k, v in (body.get("metadata") or {}).items() if v is not None}
        if metadata:
            org["metadata"] = metadata
        self.organizations[org_id] = org
        self.org_connections.extend(links)
        view = self._org_view(org)
        if links:
            view["enabled_connections"] = [self._org_connection_view(link) for link in links]
        return Response(201, view)

    @route("GET", r"/api/v2/organizations", "organizations.list")
    def list_organizations(self, req: Request) -> Response:
        self._check_query(req, {"page", "per_page", "include_totals", "from", "take", "sort",
                                "include_client_association_for"})
        for unsupported in ("sort", "include_client_association_for"):
            if req.arg(unsupported) is not None:
                raise HttpError(400, "invalid_query_string", f"The stand-in does not implement {unsupported}")
        records = sorted(self.organizations.values(), key=lambda o: o["_seq"])
        return self._paged(req, records, "organizations", self._org_view, "org")

    @route("GET", r"/api/v2/organizations/name/(?P<name>[^/]+)", "organizations.get_by_name")
    def get_organization_by_name(self, req: Request) -> Response:
        org = next((o for o in self.organizations.values() if o["name"] == req.params["name"]), None)
        if org is None:
            raise HttpError(404, "inexistent_organization", NOT_FOUND, no_error_code=True)
        return Response(200, self._org_view(org))

    @route("GET", _ORG, "organizations.get")
    def get_organization(self, req: Request) -> Response:
        return Response(200, self._org_view(self._org(req.params["id"])))

    @route("PATCH", _ORG, "organizations.update")
    def update_organization(self, req: Request) -> Response:
        org = self._org(req.params["id"])
        body = check_org_body(req.json() or {}, ORG_UPDATE_PROPS, creating=False)
        self._refuse_not_implemented(body)
        updated = {**org, **{k: v for k, v in body.items() if k != "metadata"}}
        if "name" in body:
            self._check_unique_name(body["name"], except_id=org["id"])
        if "metadata" in body:
            merged = {**org.get("metadata", {}), **body["metadata"]}
            merged = {k: v for k, v in merged.items() if v is not None}
            check_metadata(body["metadata"], merged)
            updated["metadata"] = merged
            if not merged:
                del updated["metadata"]
        self.organizations[org["id"]] = updated
        return Response(200, self._org_view(updated))

    @route("DELETE", _ORG, "organizations.delete")
    def delete_organization(self, req: Request) -> Response:
        org = self._org(req.params["id"])
        del self.organizations[org["id"]]
        self._drop_organization_links(org["id"])
        return Response(204)

    # -- enabled connections ---------------------------------------------------------------------------------------
    def _link(self, org_id: str, connection_id: str) -> dict:
        link = next((c for c in self.org_connections
                     if c["organization_id"] == org_id and c["connection_id"] == connection_id), None)
        if link is None:
            raise HttpError(404, "inexistent_connection", "No connection found by that id", no_error_code=True)
        return link

    @route("GET", _ORG + r"/enabled_connections", "organizations.connections.list")
    def list_org_connections(self, req: Request) -> Response:
        self._check_query(req, {"page", "per_page", "include_totals"})
        org = self._org(req.params["id"])
        links = [dict(c, _seq=i) for i, c in enumerate(self.org_connections) if c["organization_id"] == org["id"]]
        return self._paged(req, links, "enabled_connections", self._org_connection_view, "con")

    @route("POST", _ORG + r"/enabled_connections", "organizations.connections.add")
    def add_org_connection(self, req: Request) -> Response:
        org = self._org(req.params["id"])
        body = req.json()
        check_connection(body)
        mine = [c for c in self.org_connections if c["organization_id"] == org["id"]]
        if any(c["connection_id"] == body["connection_id"] for c in mine):
            raise HttpError(409, "conflict", "The connection is already enabled for this organization")
        link = self._new_link(org["id"], body)
        if len(mine) >= MAX_CONNECTIONS:
            raise HttpError(403, "too_many_entities",
                            f"You reached the limit of {MAX_CONNECTIONS} connections for this organization "
                            "(entity limit).")
        self.org_connections.append(link)
        return Response(201, self._org_connection_view(link))

    @route("GET", _ORG + r"/enabled_connections/(?P<cid>[^/]+)", "organizations.connections.get")
    def get_org_connection(self, req: Request) -> Response:
        org = self._org(req.params["id"])
        return Response(200, self._org_connection_view(self._link(org["id"], req.params["cid"])))

    @route("PATCH", _ORG + r"/enabled_connections/(?P<cid>[^/]+)", "organizations.connections.update")
    def update_org_connection(self, req: Request) -> Response:
        org = self._org(req.params["id"])
        link = self._link(org["id"], req.params["cid"])
        body = req.json() or {}
        check_connection(body, with_id=False)
        connection = self.connections.get(link["connection_id"]) or {}
        updated = {**link, **{k: body[k] for k in CONNECTION_OPTIONS if k in body}}
        self._check_signup_rule(updated, connection)
        link.update(updated)
        return Response(200, self._org_connection_view(link))

    @route("DELETE", _ORG + r"/enabled_connections/(?P<cid>[^/]+)", "organizations.connections.delete")
    def delete_org_connection(self, req: Request) -> Response:
        org = self._org(req.params["id"])
        link = self._link(org["id"], req.params["cid"])
        self.org_connections = [c for c in self.org_connections if c is not link]
        return Response(204)

    # -- client grants (machine-to-machine access) ----------------------------------------------------------------
    def _org_grant_ids(self, org_id: str) -> list[str]:
        return [a["grant_id"] for a in self.org_grants if a["organization_id"] == org_id]

    @route("GET", _ORG + r"/client-grants", "organizations.client_grants.list")
    def list_org_grants(self, req: Request) -> Response:
        self._check_query(req, {"audience", "client_id", "grant_ids", "page", "per_page", "include_totals"})
        org = self._org(req.params["id"])
        wanted = {g for value in req.query.get("grant_ids", []) for g in value.split(",") if g}
        aud, cid = req.arg("audience"), req.arg("client_id")
        grants = [self.grants[gid] for gid in self._org_grant_ids(org["id"]) if gid in self.grants]
        grants = [g for g in sorted(grants, key=lambda g: g["_seq"])
                  if (not wanted or g["id"] in wanted) and (aud is None or g["audience"] == aud)
                  and (cid is None or g["client_id"] == cid)]
        return self._paged(req, grants, "client_grants", self._org_grant_view, "cgr")

    @staticmethod
    def _org_grant_view(grant: dict) -> dict:
        keys = ("id", "client_id", "audience", "scope", "organization_usage", "allow_any_organization")
        return {k: grant[k] for k in keys if k in grant}

    @route("POST", _ORG + r"/client-grants", "organizations.client_grants.create")
    def associate_org_grant(self, req: Request) -> Response:
        org = self._org(req.params["id"])
        body = req.json()
        if not isinstance(body, dict) or "grant_id" not in body:
            raise payload_error("Missing required property: grant_id")
        extra = [k for k in body if k != "grant_id"]
        if extra:
            raise payload_error(f"Additional properties not allowed: {','.join(extra)}")
        if not isinstance(body["grant_id"], str):
            raise payload_error("Expected type string but found type " + type(body["grant_id"]).__name__, "grant_id")
        grant = self._grant(body["grant_id"])
        if grant.get("subject_type", "client") != "client":
            raise HttpError(400, "invalid_body", "Only client grants for machine-to-machine access (subject_type "
                                                 "client) can be associated with an organization")
        mine = self._org_grant_ids(org["id"])
        if grant["id"] in mine:
            raise HttpError(409, "conflict", "The client grant is already associated with this organization")
        if self.max_org_client_grants is not None and len(mine) >= self.max_org_client_grants:
            raise HttpError(403, "too_many_entities",
                            f"You reached the limit of {self.max_org_client_grants} client grants for this "
                            "organization (entity limit).")
        self.org_grants.append({"organization_id": org["id"], "grant_id": grant["id"]})
        return Response(201, self._org_grant_view(grant))

    @route("DELETE", _ORG + r"/client-grants/(?P<gid>[^/]+)", "organizations.client_grants.delete")
    def dissociate_org_grant(self, req: Request) -> Response:
        org = self._org(req.params["id"])
        if req.params["gid"] not in self._org_grant_ids(org["id"]):
            raise HttpError(404, "inexistent_client_grant", "The client grant is not associated with this "
                                                            "organization")
        self.org_grants = [a for a in self.org_grants
                           if not (a["organization_id"] == org["id"] and a["grant_id"] == req.params["gid"])]
        return Response(204)
