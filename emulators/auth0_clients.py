"""The Auth0 stand-in's applications: ``/api/v2/clients`` (create, get, list, update, delete, rotate-secret).

A mixin of :class:`emulators.auth0.Auth0StandIn`; it expects ``self.clients`` (client id -> record),
``self.grants``, ``self.organizations``, ``self._seq`` and ``self.max_clients``. Request schemas and error texts:
``auth0_schema.py``. Organization properties of a client (``organization_usage``, ``organization_require_behavior``,
``default_organization``) are checked as auth0-python 6.8 types them (``ClientOrganizationUsageEnum``,
``ClientOrganizationRequireBehaviorEnum``, ``ClientDefaultOrganization``); the default organization must exist.

Operation names: ``clients.create`` ``.get`` ``.list`` ``.update`` ``.delete`` ``.rotate_secret``.
"""
from __future__ import annotations

import re
import time

from .auth0_org_schema import NOT_FOUND, check_client_organization_props
from .auth0_schema import (ALNUM, APP_TYPES, AUTH_METHODS, BOOL_PROPS, CLIENT_CREATE_PROPS, CLIENT_UPDATE_PROPS,
                          GRANT_TYPES, METADATA_KEY, STRING_LIST_PROPS, STRING_PROPS, THIRD_PARTY_GRANT_TYPES,
                          URL_LIST_PROPS, URL_SHAPE, expect_type, json_type, payload_error, port_in_range,
                          random_string)
from .http_standin import HttpError, Request, Response, route

#: client properties an update may set to null (auth0-python 6.8's ``*PatchEnum`` and ``ClientDefaultOrganization``)
PATCH_NULLABLE = ("organization_usage", "organization_require_behavior", "default_organization")


class ClientRoutes:
    def _accepted_secret(self, client: dict) -> str | None:
        """The secret the token endpoint takes: the previous one until a rotation has propagated, then the new one.
        Never both: an integration that switches at once meets 401s for the propagation time, one that keeps the old
        secret past it meets them after, which is why Auth0 advises keeping both during the switch."""
        rotated_at = client.get("_rotated_at")
        if rotated_at is not None and time.time() - rotated_at < self.secret_propagation_seconds:
            return client.get("_previous_secret")
        return client.get("client_secret")

    # -- clients ---------------------------------------------------------------------------------------------------
    def _new_client_record(self, body: dict, client_id: str) -> dict:
        first_party = body.get("is_first_party", True)
        app_type = body.get("app_type")
        public = app_type in ("spa", "native")
        method = body.get("token_endpoint_auth_method", "none" if public else "client_secret_post")
        if "grant_types" in body:
            grant_types = list(body["grant_types"])
        else:
            # Approximation of the defaults the dashboard and API pick per application type.
            grant_types = {"non_interactive": ["client_credentials"],
                           "spa": ["authorization_code", "implicit", "refresh_token"],
                           "native": ["authorization_code", "implicit", "refresh_token"]}.get(
                app_type, ["authorization_code", "implicit", "refresh_token", "client_credentials"])
            if not first_party:
                grant_types = [g for g in grant_types if g in THIRD_PARTY_GRANT_TYPES]
            if method == "none":
                grant_types = [g for g in grant_types if g != "client_credentials"]
        self._seq += 1
        record = {
            "client_id": client_id, "tenant": "local-stack", "global": False, "is_first_party": first_party,
            "oidc_conformant": True, "sso_disabled": False, "cross_origin_authentication": False,
            "is_token_endpoint_ip_header_trusted": False, "custom_login_page_on": True, "callback_url_template": False,
            "callbacks": [], "allowed_origins": [], "web_origins": [], "allowed_logout_urls": [],
            "client_aliases": [], "allowed_clients": [], "client_metadata": {},
            "jwt_configuration": {"alg": "RS256", "lifetime_in_seconds": 36000, "secret_encoded": False},
            "refresh_token": {"rotation_type": "non-rotating", "expiration_type": "non-expiring", "leeway": 0,
                              "token_lifetime": 2592000, "infinite_token_lifetime": True,
                              "idle_token_lifetime": 1296000, "infinite_idle_token_lifetime": True},
            **{k: v for k, v in body.items() if v is not None},
            "grant_types": grant_types, "token_endpoint_auth_method": method, "_seq": self._seq,
        }
        if not first_party:
            record["third_party_security_mode"] = "strict"
        if method != "none":
            record["client_secret"] = self._new_secret()
        return record

    @staticmethod
    def _new_secret() -> str:
        return random_string(ALNUM + "-_", 64)

    def _new_client_id(self, first_party: bool) -> str:
        # Auth0 client ids are 32 alphanumeric characters; third-party ones start with tpc_
        # (https://auth0.com/docs/get-started/applications/third-party-applications/troubleshooting).
        while True:
            cid = random_string(ALNUM, 32)
            cid = cid if first_party else f"tpc_{cid}"
            if cid not in self.clients:
                return cid

    def _client(self, client_id: str) -> dict:
        client = self.clients.get(client_id)
        if client is None:
            raise HttpError(404, "inexistent_client", "The client does not exist")
        return client

    def _view(self, client: dict, req: Request, fields_from_query: bool = True) -> dict:
        out = {k: v for k, v in client.items() if not k.startswith("_")}
        scopes = set(str(getattr(req, "claims", {}).get("scope", "")).split())
        if "read:client_keys" not in scopes and req.op in ("clients.get", "clients.list"):
            out.pop("client_secret", None)  # secrets need read:client_keys (Management API reference)
        fields = req.arg("fields") if fields_from_query else None
        if fields:
            names = {f.strip() for f in fields.split(",") if f.strip()}
            include = self._bool_arg(req, "include_fields", True)
            out = {k: v for k, v in out.items() if (k in names) == include}
        return out

    def _validate_client_body(self, body, allowed: frozenset, creating: bool) -> dict:
        if not isinstance(body, dict):
            raise payload_error(f"Expected type object but found type {json_type(body)}")
        if creating and "name" not in body:
            raise payload_error("Missing required property: name")
        extra = [k for k in body if k not in allowed]
        if extra:
            raise payload_error(f"Additional properties not allowed: {','.join(extra)}")
        for prop, value in body.items():
            if value is None and prop in ("client_metadata",):
                raise payload_error("Expected type object but found type null", prop)
            if value is None and not creating and prop in PATCH_NULLABLE:
                continue  # checked below: null unsets it
            if prop in STRING_PROPS:
                expect_type(value, "string", prop)
            elif prop in BOOL_PROPS:
                expect_type(value, "boolean", prop)
            elif prop in STRING_LIST_PROPS:
                expect_type(value, "array", prop)
                for i, item in enumerate(value):
                    expect_type(item, "string", f"{prop}[{i}]")
            elif prop == "par_request_expiry":
                expect_type(value, "integer", prop)
        if "name" in body:
            # "Name of this client (min length: 1 character, does not allow `<` or `>`)." (clients/raw_client.py)
            if len(body["name"]) < 1:
                raise payload_error(f"String is too short ({len(body['name'])} chars), minimum 1", "name")
            if re.search(r"[<>]", body["name"]):
                raise payload_error(f"String does not match pattern ^[^<>]+$: {body['name']}", "name")
        if len(body.get("description") or "") > 140:  # "max length: 140 characters"
            raise payload_error(f"String is too long ({len(body['description'])} chars), maximum 140", "description")
        if "app_type" in body and body["app_type"] not in APP_TYPES:
            raise payload_error(f'No enum match for: "{body["app_type"]}"', "app_type")
        if "token_endpoint_auth_method" in body and body["token_endpoint_auth_method"] not in AUTH_METHODS:
            raise payload_error(f'No enum match for: "{body["token_endpoint_auth_method"]}"',
                                 "token_endpoint_auth_method")
        for i, g in enumerate(body.get("grant_types") or []):
            if g not in GRANT_TYPES:
                raise payload_error(f'No enum match for: "{g}"', f"grant_types[{i}]")
        if body.get("third_party_security_mode", "strict") != "strict":
            # "permissive" is only for tenants that had third-party apps before April 2026
            # (https://auth0.com/docs/get-started/applications/third-party-applications/permissive-mode).
            raise HttpError(400, "invalid_body", "third_party_security_mode 'permissive' is not available on this "
                                                 "tenant")
        for prop, fmt in URL_LIST_PROPS.items():
            for i, url in enumerate(body.get(prop) or []):
                if not URL_SHAPE.match(url) or not port_in_range(url):
                    raise payload_error(f"Object didn't pass validation for format {fmt}: {url}", f"{prop}[{i}]")
        if "initiate_login_uri" in body and body["initiate_login_uri"] and \
                not body["initiate_login_uri"].startswith("https://"):
            raise payload_error("Object didn't pass validation for format absolute-https-uri-or-empty: "
                                 f"{body['initiate_login_uri']}", "initiate_login_uri")
        if "client_metadata" in body:
            self._validate_metadata(body["client_metadata"], allow_null=not creating)
        check_client_organization_props(body, creating=creating)
        organization = (body.get("default_organization") or {}).get("organization_id")
        if organization is not None and organization not in self.organizations:
            raise HttpError(404, "inexistent_organization", NOT_FOUND, no_error_code=True)
        if "jwt_configuration" in body:
            jwt = body["jwt_configuration"]
            expect_type(jwt, "object", "jwt_configuration")
            extra = [k for k in jwt if k not in ("lifetime_in_seconds", "secret_encoded", "scopes", "alg")]
            if extra:
                raise payload_error(f"Additional properties not allowed: {','.join(extra)}", "jwt_configuration")
            if "lifetime_in_seconds" in jwt:
                expect_type(jwt["lifetime_in_seconds"], "integer", "jwt_configuration.lifetime_in_seconds")
        return body

    @staticmethod
    def _validate_metadata(meta, allow_null: bool) -> None:
        # "an object with string values (max 255 chars). Maximum of 10 metadata properties allowed. Field names
        # (max 255 chars) ..." (auth0-python 6.8 types/client_metadata.py)
        expect_type(meta, "object", "client_metadata")
        if len(meta) > 10:
            raise payload_error(f"Too many properties defined ({len(meta)}), maximum 10", "client_metadata")
        for key, value in meta.items():
            if len(key) > 255:
                raise payload_error(f"String is too long ({len(key)} chars), maximum 255",
                                     f"client_metadata.{key[:40]}...")
            if not METADATA_KEY.match(key):
                raise payload_error(f"String does not match pattern: {key}", "client_metadata")
            if value is None and allow_null:
                continue  # PATCH: null removes the key
            expect_type(value, "string", f"client_metadata.{key}")
            if len(value) > 255:
                raise payload_error(f"String is too long ({len(value)} chars), maximum 255", f"client_metadata.{key}")

    @staticmethod
    def _check_client_rules(client: dict) -> None:
        """Rules that span properties, checked on the resulting client (create and update)."""
        grants = client.get("grant_types") or []
        if "client_credentials" in grants and client.get("token_endpoint_auth_method") == "none":
            # "400 Bad Request: Invalid grant types: client_credentials" for a public client
            # (alexkappa/terraform-provider-auth0#256)
            raise HttpError(400, "invalid_body", "Invalid grant types: client_credentials")
        if not client.get("is_first_party", True):
            bad = [g for g in grants if g not in THIRD_PARTY_GRANT_TYPES]
            if bad:
                raise HttpError(400, "invalid_body",
                                f"Invalid grant types for a third-party client: {','.join(bad)}")

    @route("POST", r"/api/v2/clients", "clients.create")
    def create_client(self, req: Request) -> Response:
        body = self._validate_client_body(req.json(), CLIENT_CREATE_PROPS, creating=True)
        if body.get("client_metadata"):
            body = {**body, "client_metadata": dict(body["client_metadata"])}
        first_party = body.get("is_first_party", True)
        if self.max_clients is not None and len(self.clients) >= self.max_clients:
            # Auth0 refuses a configuration entity past the tenant's entity limit with a 403 that names it (the
            # exact code is not documented; this one follows Auth0's error body shape).
            raise HttpError(403, "too_many_entities",
                            f"You reached the limit of {self.max_clients} applications for this tenant (entity "
                            "limit). Delete unused applications or contact support to raise it.")
        record = self._new_client_record(body, "pending")
        self._check_client_rules(record)
        record["client_id"] = self._new_client_id(first_party)
        self.clients[record["client_id"]] = record
        return Response(201, self._view(record, req, fields_from_query=False))

    @route("GET", r"/api/v2/clients/(?P<id>[^/]+)", "clients.get")
    def get_client(self, req: Request) -> Response:
        self._check_query(req, {"fields", "include_fields"})
        return Response(200, self._view(self._client(req.params["id"]), req))

    @route("GET", r"/api/v2/clients", "clients.list")
    def list_clients(self, req: Request) -> Response:
        self._check_query(req, {"fields", "include_fields", "page", "per_page", "include_totals", "is_global",
                                "is_first_party", "app_type", "external_client_id", "q"})
        for unsupported in ("q", "external_client_id"):
            if req.arg(unsupported) is not None:
                raise HttpError(400, "invalid_query_string", f"The stand-in does not implement the {unsupported} "
                                                             f"filter")
        page = self._int_arg(req, "page", 0, minimum=0)
        per_page = self._int_arg(req, "per_page", 50, minimum=1, maximum=100)
        totals = self._bool_arg(req, "include_totals", False)
        first_party = self._bool_arg(req, "is_first_party", None)
        is_global = self._bool_arg(req, "is_global", None)
        app_types = {t for t in (req.arg("app_type") or "").split(",") if t}
        matching = [c for c in sorted(self.clients.values(), key=lambda c: c.get("_seq", 0))
                    if (first_party is None or c.get("is_first_party", True) == first_party)
                    and (is_global is None or c.get("global", False) == is_global)
                    and (not app_types or c.get("app_type") in app_types)]
        window = [self._view(c, req) for c in matching[page * per_page:(page + 1) * per_page]]
        if totals:
            return Response(200, {"clients": window, "start": page * per_page, "limit": per_page,
                                  "total": len(matching)})
        return Response(200, window)

    @route("PATCH", r"/api/v2/clients/(?P<id>[^/]+)", "clients.update")
    def update_client(self, req: Request) -> Response:
        client = self._client(req.params["id"])
        body = self._validate_client_body(req.json() or {}, CLIENT_UPDATE_PROPS, creating=False)
        if "is_first_party" in body and body["is_first_party"] != client.get("is_first_party", True):
            # The project brief: ownership is fixed at creation (a third-party id carries the tpc_ prefix, and
            # third_party_security_mode is "set on creation and cannot be modified", types/client.py docs).
            raise HttpError(400, "invalid_body", "The is_first_party property cannot be changed after creation")
        updated = {**client, **{k: v for k, v in body.items() if k != "client_metadata"}}
        for prop in PATCH_NULLABLE:
            if prop in body and body[prop] is None:
                updated.pop(prop, None)
        if "client_metadata" in body:
            # PATCH merges client_metadata; a null value removes a key (the Terraform provider sends nulls to delete).
            meta = {**client.get("client_metadata", {}), **body["client_metadata"]}
            updated["client_metadata"] = {k: v for k, v in meta.items() if v is not None}
            self._validate_metadata(updated["client_metadata"], allow_null=False)
        self._check_client_rules(updated)
        if updated.get("token_endpoint_auth_method") != "none" and not updated.get("client_secret"):
            updated["client_secret"] = self._new_secret()
        self.clients[client["client_id"]] = updated
        return Response(200, self._view(updated, req, fields_from_query=False))

    @route("DELETE", r"/api/v2/clients/(?P<id>[^/]+)", "clients.delete")
    def delete_client(self, req: Request) -> Response:
        client = self._client(req.params["id"])
        del self.clients[client["client_id"]]
        # Deleting an application removes its client grants too, and with them their organization associations.
        self._drop_grants(lambda g: g["client_id"] == client["client_id"])
        return Response(204)

    @route("POST", r"/api/v2/clients/(?P<id>[^/]+)/rotate-secret", "clients.rotate_secret")
    def rotate_secret(self, req: Request) -> Response:
        client = self._client(req.params["id"])
        methods = client.get("client_authentication_methods")
        if isinstance(methods, dict) and methods.get("private_key_jwt"):
            # The Management API reference: "This endpoint cannot be used with clients configured with Private Key
            # JWT authentication method".
            raise HttpError(400, "invalid_body", "Cannot rotate the secret of a client that uses private_key_jwt")
        # The token endpoint keeps taking the old secret until the new one has propagated
        # (secret_propagation_seconds), then only the new one.
        client["_previous_secret"] = self._accepted_secret(client)
        client["_rotated_at"] = time.time()
        client["client_secret"] = self._new_secret()
        return Response(200, self._view(client, req, fields_from_query=False))

