"""The tenant-level parts of the Auth0 stand-in: the discovery documents, signing keys and resource servers (APIs).

A mixin of :class:`emulators.auth0.Auth0StandIn`; it expects ``self.signing`` (:class:`SigningKeys`),
``self.resource_servers`` (id -> record), ``self.domain`` and ``self.management_audience``.

- ``GET /.well-known/openid-configuration`` and ``GET /.well-known/jwks.json``: unauthenticated, as on a tenant.
  The metadata carries the members a resource server or API Management's ``validate-jwt`` reads (``issuer``,
  ``jwks_uri``, ``token_endpoint``, the signing algorithms) and the ones Auth0's document lists beside them.
- ``/api/v2/keys/signing`` (list, get, rotate, revoke): see ``auth0_signing.py``.
- ``/api/v2/tenants/settings`` (get, update): only ``allow_organization_name_in_authentication_api`` (which adds
  ``org_name`` to tokens and lets the token endpoint take an organization's name) and ``friendly_name``; any other
  setting is refused as not implemented.
- ``/api/v2/resource-servers`` (list, get by id or identifier, create, update, delete), the shape of auth0-python
  6.8's ``ResourceServer``: ``id``, ``name``, ``identifier``, ``scopes`` (``{value, description}``), ``signing_alg``,
  ``token_lifetime``, ``is_system``. The Management API itself is listed as a system resource server that cannot be
  changed.

Operation names: ``discovery.openid_configuration``, ``discovery.jwks``, ``signing_keys.list`` ``.get`` ``.rotate``
``.revoke``, ``resource_servers.list`` ``.get`` ``.create`` ``.update`` ``.delete``, ``tenant_settings.get``
``.update``.
"""
from __future__ import annotations

import re

from .auth0_schema import ALNUM, expect_type, json_type, payload_error, random_string
from .http_standin import HttpError, Request, Response, route

RESOURCE_SERVER_SCOPES = {
    "resource_servers.list": ("read:resource_servers",),
    "resource_servers.get": ("read:resource_servers",),
    "resource_servers.create": ("create:resource_servers",),
    "resource_servers.update": ("update:resource_servers",),
    "resource_servers.delete": ("delete:resource_servers",),
    "signing_keys.list": ("read:signing_keys",),
    "signing_keys.get": ("read:signing_keys",),
    "signing_keys.rotate": ("create:signing_keys", "update:signing_keys"),
    "signing_keys.revoke": ("update:signing_keys",),
    "tenant_settings.get": ("read:tenant_settings",),
    "tenant_settings.update": ("update:tenant_settings",),
}
TENANT_SCOPES = ("read:resource_servers", "create:resource_servers", "update:resource_servers",
                 "delete:resource_servers", "read:signing_keys", "create:signing_keys", "update:signing_keys",
                 "read:tenant_settings", "update:tenant_settings")

# Body properties accepted (a subset of auth0-python 6.8 RawResourceServersClient.create/update; the others answer
# "Additional properties not allowed", so a caller relying on one notices).
RS_CREATE_PROPS = frozenset({"identifier", "name", "scopes", "signing_alg", "allow_offline_access",
                             "token_lifetime", "token_lifetime_for_web", "token_dialect",
                             "skip_consent_for_verifiable_first_party_clients", "enforce_policies"})
RS_UPDATE_PROPS = RS_CREATE_PROPS - {"identifier"}
SIGNING_ALGS = ("HS256", "RS256", "RS512", "PS256")
TOKEN_DIALECTS = ("access_token", "access_token_authz", "rfc9068_profile", "rfc9068_profile_authz")
DEFAULT_TOKEN_LIFETIME = 86400  # Auth0's default for an API's access tokens


class TenantRoutes:
    # -- discovery -------------------------------------------------------------------------------------------------
    @property
    def issuer_url(self) -> str:
        return f"https://{self.domain}/"

    @route("GET", r"/\.well-known/openid-configuration", "discovery.openid_configuration")
    def openid_configuration(self, req: Request) -> Response:
        base = f"https://{self.domain}"
        return Response(200, {
            "issuer": self.issuer_url, "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/oauth/token", "device_authorization_endpoint": f"{base}/oauth/device/code",
            "userinfo_endpoint": f"{base}/userinfo", "mfa_challenge_endpoint": f"{base}/mfa/challenge",
            "jwks_uri": f"{base}/.well-known/jwks.json", "registration_endpoint": f"{base}/oidc/register",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "scopes_supported": ["openid", "profile", "offline_access", "name", "given_name", "family_name",
                                 "nickname", "email", "email_verified", "picture", "created_at", "identities",
                                 "phone", "address"],
            "response_types_supported": ["code", "token", "id_token", "code token", "code id_token",
                                         "token id_token", "code token id_token"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["HS256", "RS256", "PS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                      "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "PS256"],
            "request_uri_parameter_supported": False, "request_parameter_supported": False,
            "end_session_endpoint": f"{base}/oidc/logout"})

    @route("GET", r"/\.well-known/jwks\.json", "discovery.jwks")
    def jwks(self, req: Request) -> Response:
        return Response(200, self.signing.jwks())

    # -- signing keys ----------------------------------------------------------------------------------------------
    @route("GET", r"/api/v2/keys/signing", "signing_keys.list")
    def list_signing_keys(self, req: Request) -> Response:
        return Response(200, [self.signing.describe(k) for k in self.signing.all_keys()])

    @route("GET", r"/api/v2/keys/signing/(?P<kid>[^/]+)", "signing_keys.get")
    def get_signing_key(self, req: Request) -> Response:
        key = self.signing.find(req.params["kid"])
        if key is None:
            raise HttpError(404, "inexistent_signing_key", "Signing key not found")
        return Response(200, self.signing.describe(key))

    @route("POST", r"/api/v2/keys/signing/rotate", "signing_keys.rotate")
    def rotate_signing_key(self, req: Request) -> Response:
        nxt = self.signing.rotate()
        return Response(201, {"cert": nxt.cert_pem, "kid": nxt.kid})

    @route("PUT", r"/api/v2/keys/signing/(?P<kid>[^/]+)/revoke", "signing_keys.revoke")
    def revoke_signing_key(self, req: Request) -> Response:
        try:
            key = self.signing.revoke(req.params["kid"])
        except KeyError:
            raise HttpError(404, "inexistent_signing_key", "Signing key not found") from None
        except ValueError as exc:
            raise HttpError(400, "invalid_operation", str(exc)) from None
        return Response(200, {"cert": key.cert_pem, "kid": key.kid})

    # -- resource servers ------------------------------------------------------------------------------------------
    def _system_resource_server(self) -> dict:
        from .auth0 import MANAGEMENT_SCOPES
        return {"id": "system-management-api", "name": "Auth0 Management API", "is_system": True,
                "identifier": self.management_audience, "allow_offline_access": False,
                "skip_consent_for_verifiable_first_party_clients": False, "token_lifetime": 86400,
                "token_lifetime_for_web": 7200, "signing_alg": "RS256", "token_dialect": "access_token",
                "scopes": [{"value": s, "description": s} for s in MANAGEMENT_SCOPES]}

    def seed_resource_servers(self, apis: dict[str, list[str]]) -> dict[str, dict]:
        out = {}
        for identifier, scopes in apis.items():
            record = self._new_resource_server({"identifier": identifier, "name": identifier,
                                                "scopes": [{"value": s} for s in scopes]})
            record["_lifetime_from_config"] = True  # until a caller sets token_lifetime itself
            out[record["id"]] = record
        return out

    def resource_server_for(self, identifier: str) -> dict | None:
        return next((r for r in self.resource_servers.values() if r["identifier"] == identifier), None)

    @property
    def apis(self) -> dict[str, list[str]]:
        """identifier -> the scope values it defines (what client grants and tokens are checked against)."""
        return {r["identifier"]: [s["value"] for s in r.get("scopes", [])] for r in self.resource_servers.values()}

    def _new_resource_server(self, body: dict) -> dict:
        return {"id": random_string(ALNUM, 24).lower(), "name": body.get("name") or body["identifier"],
                "is_system": False, "identifier": body["identifier"], "scopes": body.get("scopes", []),
                "signing_alg": body.get("signing_alg", "RS256"),
                "allow_offline_access": body.get("allow_offline_access", False),
                "skip_consent_for_verifiable_first_party_clients": body.get(
                    "skip_consent_for_verifiable_first_party_clients", True),
                "token_lifetime": body.get("token_lifetime", DEFAULT_TOKEN_LIFETIME),
                "token_lifetime_for_web": body.get("token_lifetime_for_web", 7200),
                "token_dialect": body.get("token_dialect", "access_token"),
                "enforce_policies": body.get("enforce_policies", False)}

    @staticmethod
    def _rs_view(record: dict) -> dict:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    def _validate_resource_server(self, body, allowed: frozenset, creating: bool) -> dict:
        if not isinstance(body, dict):
            raise payload_error(f"Expected type object but found type {json_type(body)}")
        extra = [k for k in body if k not in allowed]
        if extra:
            raise payload_error(f"Additional properties not allowed: {','.join(extra)}")
        if creating and "identifier" not in body:
            raise payload_error("Missing required property: identifier")
        for prop in ("identifier", "name", "signing_alg", "token_dialect"):
            if prop in body:
                expect_type(body[prop], "string", prop)
        if "name" in body and re.search(r"[<>]", body["name"]):
            raise payload_error(f"String does not match pattern ^[^<>]+$: {body['name']}", "name")
        for prop in ("token_lifetime", "token_lifetime_for_web"):
            if prop in body:
                expect_type(body[prop], "integer", prop)
                if not 1 <= body[prop] <= 2592000:
                    raise payload_error(f"Value {body[prop]} is out of range 1-2592000", prop)
        if body.get("signing_alg", "RS256") not in SIGNING_ALGS:
            raise payload_error(f'No enum match for: "{body["signing_alg"]}"', "signing_alg")
        if body.get("token_dialect", "access_token") not in TOKEN_DIALECTS:
            raise payload_error(f'No enum match for: "{body["token_dialect"]}"', "token_dialect")
        if "scopes" in body:
            expect_type(body["scopes"], "array", "scopes")
            for i, scope in enumerate(body["scopes"]):
                expect_type(scope, "object", f"scopes[{i}]")
                bad = [k for k in scope if k not in ("value", "description")]
                if bad:
                    raise payload_error(f"Additional properties not allowed: {','.join(bad)}", f"scopes[{i}]")
                if "value" not in scope:
                    raise payload_error("Missing required property: value", f"scopes[{i}]")
                expect_type(scope["value"], "string", f"scopes[{i}].value")
                if not scope["value"] or " " in scope["value"]:
                    raise payload_error(f"String does not match pattern ^[^ ]+$: {scope['value']}",
                                         f"scopes[{i}].value")
            values = [s["value"] for s in body["scopes"]]
            if len(set(values)) != len(values):
                raise HttpError(400, "invalid_body", "Scopes must be unique")
        return body

    def _resource_server(self, key: str) -> dict:
        # The id, or the identifier (URL-encoded in the path; the router decodes it).
        record = self.resource_servers.get(key) or self.resource_server_for(key)
        if record is None:
            if key in (self.management_audience, "system-management-api"):
                return self._system_resource_server()
            raise HttpError(404, "inexistent_resource_server", "The resource server does not exist")
        return record

    @route("GET", r"/api/v2/resource-servers", "resource_servers.list")
    def list_resource_servers(self, req: Request) -> Response:
        self._check_query(req, {"identifiers", "page", "per_page", "include_totals", "include_fields", "fields"})
        wanted = set(req.query.get("identifiers", []))
        records = [self._system_resource_server()] + sorted(self.resource_servers.values(), key=lambda r: r["id"])
        records = [r for r in records if not wanted or r["identifier"] in wanted]
        page = self._int_arg(req, "page", 0, minimum=0)
        per_page = self._int_arg(req, "per_page", 50, minimum=1, maximum=100)
        window = [self._rs_view(r) for r in records[page * per_page:(page + 1) * per_page]]
        if self._bool_arg(req, "include_totals", False):
            return Response(200, {"resource_servers": window, "start": page * per_page, "limit": per_page,
                                  "total": len(records)})
        return Response(200, window)

    @route("GET", r"/api/v2/resource-servers/(?P<id>[^/]+)", "resource_servers.get")
    def get_resource_server(self, req: Request) -> Response:
        return Response(200, self._rs_view(self._resource_server(req.params["id"])))

    @route("POST", r"/api/v2/resource-servers", "resource_servers.create")
    def create_resource_server(self, req: Request) -> Response:
        body = self._validate_resource_server(req.json(), RS_CREATE_PROPS, creating=True)
        if body["identifier"] == self.management_audience or self.resource_server_for(body["identifier"]):
            raise HttpError(409, "conflict", "A resource server with the same identifier already exists")
        record = self._new_resource_server(body)
        self.resource_servers[record["id"]] = record
        return Response(201, self._rs_view(record))

    @route("PATCH", r"/api/v2/resource-servers/(?P<id>[^/]+)", "resource_servers.update")
    def update_resource_server(self, req: Request) -> Response:
        record = self._resource_server(req.params["id"])
        if record.get("is_system"):
            raise HttpError(403, "operation_not_supported", "You cannot update a system resource server")
        body = self._validate_resource_server(req.json() or {}, RS_UPDATE_PROPS, creating=False)
        record.update(body)
        if "token_lifetime" in body:
            record.pop("_lifetime_from_config", None)
        return Response(200, self._rs_view(record))

    @route("DELETE", r"/api/v2/resource-servers/(?P<id>[^/]+)", "resource_servers.delete")
    def delete_resource_server(self, req: Request) -> Response:
        record = self._resource_server(req.params["id"])
        if record.get("is_system"):
            raise HttpError(403, "operation_not_supported", "You cannot delete a system resource server")
        del self.resource_servers[record["id"]]
        # Auth0 deletes the client grants to a deleted API with it (and so their organization associations).
        self._drop_grants(lambda g: g["audience"] == record["identifier"])
        return Response(204)

    # -- tenant settings -------------------------------------------------------------------------------------------
    def _settings_view(self) -> dict:
        return {"friendly_name": self.tenant_settings.get("friendly_name", "local-stack"),
                "allow_organization_name_in_authentication_api":
                    bool(self.tenant_settings.get("allow_organization_name_in_authentication_api", False))}

    @route("GET", r"/api/v2/tenants/settings", "tenant_settings.get")
    def get_tenant_settings(self, req: Request) -> Response:
        self._check_query(req, {"fields", "include_fields"})
        return Response(200, self._settings_view())

    @route("PATCH", r"/api/v2/tenants/settings", "tenant_settings.update")
    def update_tenant_settings(self, req: Request) -> Response:
        body = req.json() or {}
        expect_type(body, "object", None)
        for prop, value in body.items():
            if prop == "allow_organization_name_in_authentication_api":
                expect_type(value, "boolean", prop)
            elif prop == "friendly_name":
                expect_type(value, "string", prop)
            else:
                raise HttpError(400, "invalid_body", f"The stand-in does not implement the tenant setting {prop}")
        self.tenant_settings.update(body)
        return Response(200, self._settings_view())
