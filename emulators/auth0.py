"""A stand-in for the parts of Auth0 this project uses: ``POST /oauth/token`` and the Management API v2 for clients
(applications) and client grants; the tenant's discovery documents, signing keys and resource servers are in
``auth0_tenant.py`` (a mixin), its RS256 keys and tokens in ``auth0_signing.py``.

Tokens are Auth0's: RS256 with a ``kid`` of the published JWKS, ``iss`` = ``https://{domain}/``, and for client
credentials ``sub`` = ``{client_id}@clients``, ``azp``, ``aud``, ``iat``, ``exp``, ``scope``, ``gty``; the
Management API accepts only such tokens signed by a key not revoked, for its own audience. A management client given
to the constructor has a real client grant to the Management API (all of ``MANAGEMENT_SCOPES``), which the tenant
command narrows like any grant.

auth0-python 6.x runs unchanged against it: ``ManagementClient(domain="127.0.0.1:<port>", ...)`` builds
``https://{domain}/api/v2`` and ``https://{domain}/oauth/token`` (``management/management_client.py`` and
``management/token_provider.py``), so the stand-in serves TLS and its Management API audience is
``https://{domain}/api/v2/`` with ``domain`` defaulting to ``host:port``. The SDK's token provider opens its own
``httpx.Client()``; httpx 0.28 (``_config.create_ssl_context``) trusts ``SSL_CERT_FILE`` when it is set, so point
that variable at the local CA before creating a ``ManagementClient`` with ``client_id``/``client_secret``.

Contract sources: the Management API v2 reference (https://auth0.com/docs/api/management/v2), the request and
response schemas as generated into auth0-python 6.8 (``clients/raw_client.py``, ``client_grants/raw_client.py``,
``types/``), and error texts quoted in public issues (cited next to each behaviour).

Operation names (for fault injection, call counters, chaos and benchmarks):
    oauth.token
    clients.create  clients.get  clients.list  clients.update  clients.delete  clients.rotate_secret
    client_grants.create  client_grants.get  client_grants.list  client_grants.update  client_grants.delete
    discovery.openid_configuration  discovery.jwks  signing_keys.list  .get  .rotate  .revoke
    resource_servers.list  .get  .create  .update  .delete
"""
from __future__ import annotations

import base64
import binascii
import http
import json
import re
import secrets
import time
import urllib.parse

from .auth0_schema import (ALNUM, APP_TYPES, AUTH_METHODS, BOOL_PROPS, CLIENT_CREATE_PROPS, CLIENT_UPDATE_PROPS,
                          GRANT_CREATE_PROPS, GRANT_TYPES, GRANT_UPDATE_PROPS, METADATA_KEY, STRING_LIST_PROPS,
                          STRING_PROPS, THIRD_PARTY_GRANT_TYPES, URL_LIST_PROPS, URL_SHAPE, expect_type, json_type,
                          payload_error, port_in_range, query_error, random_string)
from .auth0_signing import SigningKeys, TokenRejected, client_credentials_claims
from .auth0_tenant import RESOURCE_SERVER_SCOPES, TENANT_SCOPES, TenantRoutes
from .http_standin import HttpError, HttpStandIn, Request, Response, bearer_token, route
from .ratelimit import TokenBucket

#: scopes of the Management API that this stand-in serves; a management client given to the constructor starts with
#: a client grant of all of them (the tenant command narrows the app's to what it uses)
MANAGEMENT_SCOPES = ("read:clients", "create:clients", "update:clients", "delete:clients", "read:client_keys",
                     "update:client_keys", "read:client_grants", "create:client_grants", "update:client_grants",
                     "delete:client_grants") + TENANT_SCOPES

#: scope needed per operation (any one of them), as listed in the Management API reference
REQUIRED_SCOPES = {
    "clients.create": ("create:clients",),
    "clients.get": ("read:clients", "read:client_keys"),
    "clients.list": ("read:clients", "read:client_keys"),
    "clients.update": ("update:clients", "update:client_keys"),
    "clients.delete": ("delete:clients",),
    "clients.rotate_secret": ("update:client_keys",),
    "client_grants.create": ("create:client_grants",),
    "client_grants.get": ("read:client_grants",),
    "client_grants.list": ("read:client_grants",),
    "client_grants.update": ("update:client_grants",),
    "client_grants.delete": ("delete:client_grants",),
    **RESOURCE_SERVER_SCOPES,
}

DEFAULT_APIS = {"https://api.contoso.local/": ["read:data", "write:data"]}

class Auth0StandIn(TenantRoutes, HttpStandIn):
    name = "auth0"

    def __init__(self, *, domain: str | None = None,
                 management_clients: dict[str, str] | None = None, apis: dict[str, list[str]] | None = None,
                 rate: float = 50.0, burst: int = 100, token_lifetime: int = 86400, **kw):
        # The tenant's RS256 signing keys (kept in the state file with the rest, so a restart keeps its tokens valid).
        self.signing = SigningKeys()
        self._domain = domain
        self.token_lifetime = int(token_lifetime)
        #: the tenant's entity limit on applications (Auth0: 10 free, 100 self-service, 100,000 enterprise);
        #: None: no limit
        self.max_clients: int | None = None
        #: seconds after a rotation during which the token endpoint still takes the old secret and not yet the new
        #: one (Auth0: "New secrets may be delayed up to thirty seconds while rotating"); 0: the new one at once
        self.secret_propagation_seconds: float = 0.0
        self._seed_apis = {aud: list(scopes) for aud, scopes in (apis if apis is not None else DEFAULT_APIS).items()}
        self.resource_servers: dict[str, dict] = {}
        self.bucket = TokenBucket(rate, burst)
        self._default_management = management_clients is None
        self.management_clients = dict(management_clients) if management_clients else {
            random_string(ALNUM, 32): random_string(ALNUM + "-_", 64)}
        self.clients: dict[str, dict] = {}
        self.grants: dict[str, dict] = {}
        self._seq = 0
        super().__init__(**kw)  # may call load_state() from the state file
        if not self.clients:
            self.load_state({})

    # -- identity of the tenant --------------------------------------------------------------------------------------
    @property
    def domain(self) -> str:
        return self._domain or f"{self.host}:{self.port}"

    @property
    def management_audience(self) -> str:
        return f"https://{self.domain}/api/v2/"

    @property
    def management_client_id(self) -> str:
        return next(iter(self.management_clients))

    @property
    def management_client_secret(self) -> str:
        return self.clients[self.management_client_id]["client_secret"]

    # -- state ---------------------------------------------------------------------------------------------------
    def dump_state(self) -> dict:
        # Secrets are stored under their Auth0 name, ``client_secret``, in each client record.
        return {"clients": list(self.clients.values()), "client_grants": list(self.grants.values()),
                "resource_servers": list(self.resource_servers.values()), "signing_keys": self.signing.dump(),
                "management_client_ids": list(self.management_clients), "seq": self._seq}

    def load_state(self, state: dict) -> None:
        self.clients = {c["client_id"]: dict(c) for c in state.get("clients", [])}
        self.grants = {g["id"]: dict(g) for g in state.get("client_grants", [])}
        self._seq = int(state.get("seq", 0))
        if "resource_servers" in state:
            self.resource_servers = {r["id"]: dict(r) for r in state["resource_servers"]}
        else:
            self.resource_servers = self.seed_resource_servers(self._seed_apis)
        # A reset forgets resources, not the tenant's keys: tokens issued before it stay verifiable.
        self.signing.load(state.get("signing_keys"))
        previous = [cid for cid in state.get("management_client_ids", []) if cid in self.clients]
        if self._default_management and previous:
            # A generated management client survives restarts with a state file instead of piling up.
            self.management_clients = {cid: self.clients[cid]["client_secret"] for cid in previous}
        # The tenant's own machine-to-machine app exists in every real tenant and is listed with the others.
        for cid, secret in self.management_clients.items():
            record = self.clients.setdefault(cid, self._new_client_record(
                {"name": "Management API client (local stack)", "app_type": "non_interactive",
                 "grant_types": ["client_credentials"]}, cid))
            record["client_secret"] = secret
        if self._domain or self.port:
            self._ensure_management_grants()

    def start(self) -> "Auth0StandIn":
        super().start()
        with self.lock:
            self._ensure_management_grants()  # the Management API's audience names the port, known only now
        return self

    def _ensure_management_grants(self) -> None:
        """The grant a person gives the tenant's machine-to-machine app in the dashboard, as a real client grant, so
        that reading and narrowing it (python -m opstool tenant) works as on a tenant."""
        for cid in self.management_clients:
            mine = [g for g in self.grants.values() if g["client_id"] == cid and g["audience"].endswith("/api/v2/")]
            for grant in mine:
                grant["audience"] = self.management_audience  # kept state from a run on another port
            if not mine:
                self._seq += 1
                gid = f"cgr_{random_string(ALNUM, 16)}"
                self.grants[gid] = {"id": gid, "client_id": cid, "audience": self.management_audience,
                                    "scope": list(MANAGEMENT_SCOPES), "allow_any_organization": False,
                                    "is_system": False, "subject_type": "client", "_seq": self._seq}

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.bucket.rate, "burst": self.bucket.burst,
                "token_lifetime": self.token_lifetime, "domain": self.domain, "apis": self.apis,
                "max_clients": self.max_clients, "secret_propagation_seconds": self.secret_propagation_seconds}

    def set_config(self, values: dict) -> None:
        super().set_config(values)
        if "rate" in values or "burst" in values:
            try:
                self.bucket = TokenBucket(float(values.get("rate", self.bucket.rate)),
                                          int(values.get("burst", self.bucket.burst)))
            except (TypeError, ValueError) as exc:
                raise HttpError(400, "invalid_config", str(exc)) from None
        if "token_lifetime" in values:
            self.token_lifetime = int(values["token_lifetime"])
        if "max_clients" in values:
            self.max_clients = None if values["max_clients"] is None else int(values["max_clients"])
        if "secret_propagation_seconds" in values:
            try:
                seconds = float(values["secret_propagation_seconds"])
            except (TypeError, ValueError):
                seconds = -1.0
            if not 0 <= seconds <= 3600:
                raise HttpError(400, "invalid_config", "secret_propagation_seconds must be 0-3600")
            self.secret_propagation_seconds = seconds

    # -- errors, auth, rate limiting -----------------------------------------------------------------------------------
    def error_body(self, err: HttpError):
        if err.extra.get("oauth"):
            # The Authentication API answers in OAuth 2.0's shape (RFC 6749 section 5.2).
            return {"error": err.code, "error_description": err.message}
        try:
            phrase = http.HTTPStatus(err.status).phrase
        except ValueError:
            phrase = "Error"
        return {"statusCode": err.status, "error": phrase, "message": err.message, "errorCode": err.code}

    def before(self, req: Request) -> dict[str, str]:
        if req.path.startswith("/.well-known/"):
            return {}  # served from Auth0's CDN, outside the Management API's rate limit
        allowed, headers = self.bucket.take()
        req.ratelimit_headers = headers
        if not allowed:
            raise HttpError(429, "too_many_requests", "Global limit has been reached", headers=dict(headers))
        if req.path.startswith("/api/v2/"):
            req.claims = self._authenticate(req)
        return headers

    def _authenticate(self, req: Request) -> dict:
        token = bearer_token(req)
        if not token:
            raise HttpError(401, "missing_authentication", "Missing authentication")
        try:
            claims = self.signing.verify(token, self.management_audience, self.issuer_url)
        except TokenRejected as exc:
            code = "token_expired" if exc.reason == "expired" else "invalid_token"
            raise HttpError(401, code, str(exc)) from None
        granted = set(str(claims.get("scope", "")).split())
        needed = REQUIRED_SCOPES.get(req.op, ())
        if needed and not granted.intersection(needed):
            raise HttpError(403, "insufficient_scope", f"Insufficient scope, expected any of: {','.join(needed)}")
        return claims

    def _run(self, fn, req, handler):
        # Rate-limit headers go on every answer, errors included; the base only adds them to successes.
        try:
            return super()._run(fn, req, handler)
        except HttpError as err:
            for k, v in getattr(req, "ratelimit_headers", {}).items():
                err.headers.setdefault(k, v)
            if req.op == "oauth.token":
                err.extra["oauth"] = True
            raise

    # -- /oauth/token ----------------------------------------------------------------------------------------------
    @route("POST", r"/oauth/token", "oauth.token")
    def token(self, req: Request) -> Response:
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                body = json.loads(req.body or b"{}")
            except ValueError:
                raise HttpError(400, "invalid_request", "Invalid JSON body") from None
            body = body if isinstance(body, dict) else {}
        else:
            body = {k: v[-1] for k, v in urllib.parse.parse_qs(req.body.decode("utf-8", "replace")).items()}
        client_id, client_secret = body.get("client_id"), body.get("client_secret")
        basic = req.headers.get("Authorization") or ""
        if basic.lower().startswith("basic "):  # client_secret_basic
            try:
                user, _, pw = base64.b64decode(basic[6:].strip()).decode().partition(":")
                client_id, client_secret = urllib.parse.unquote(user), urllib.parse.unquote(pw)
            except (binascii.Error, UnicodeDecodeError):
                raise HttpError(401, "access_denied", "Unauthorized") from None
        grant_type = body.get("grant_type")
        if not grant_type:
            raise HttpError(400, "invalid_request", "Missing required parameter: grant_type")
        if grant_type != "client_credentials":
            raise HttpError(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
        client = self.clients.get(client_id or "")
        # Wrong id or secret: 401 {"error":"access_denied","error_description":"Unauthorized"} (auth0/node-auth0#428)
        accepted = self._accepted_secret(client) if client else None
        if not accepted or not client_secret or \
                not secrets.compare_digest(str(client_secret).encode(), accepted.encode()):
            raise HttpError(401, "access_denied", "Unauthorized")
        if "client_credentials" not in client.get("grant_types", []):
            raise HttpError(403, "unauthorized_client", "Grant type 'client_credentials' not allowed for the client.")
        audience = body.get("audience")
        if not audience:
            raise HttpError(403, "access_denied",
                            "No audience parameter was provided, and no default audience has been configured")
        if audience != self.management_audience and audience not in self.apis:
            # (auth0/terraform-provider-auth0#951)
            raise HttpError(403, "access_denied", f"Service not enabled within domain: {audience}")
        grant = next((g for g in self.grants.values()
                      if g["client_id"] == client_id and g["audience"] == audience), None)
        if grant is None:
            # (auth0/auth0-python#173, auth0/ruby-auth0#610)
            raise HttpError(403, "access_denied",
                            f'Client is not authorized to access "{audience}". You need to create a '
                            f'"client-grant" associated to this API. See: '
                            f'https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants')
        granted = list(grant["scope"])
        requested = str(body.get("scope") or "").split()
        scope = [s for s in granted if s in requested] if requested else granted
        lifetime = self.token_lifetime
        api = self.resource_server_for(audience)
        if api is not None and not api.get("_lifetime_from_config"):
            lifetime = int(api.get("token_lifetime") or lifetime)  # an API's access tokens live as long as it says
        token = self.signing.sign(client_credentials_claims(issuer=self.issuer_url, client_id=client_id,
                                                            audience=audience, scope=scope, lifetime=lifetime))
        return Response(200, {"access_token": token, "expires_in": lifetime, "scope": " ".join(scope),
                              "token_type": "Bearer"})

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
        # Deleting an application removes its client grants too.
        self.grants = {gid: g for gid, g in self.grants.items() if g["client_id"] != client["client_id"]}
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

    # -- client grants ---------------------------------------------------------------------------------------------
    def _api_scopes(self, audience: str) -> list[str]:
        if audience == self.management_audience:
            return list(MANAGEMENT_SCOPES)
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
        return body

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
        self._seq += 1
        grant = {"id": f"cgr_{random_string(ALNUM, 16)}", "client_id": body["client_id"], "audience": body["audience"],
                 "scope": scope, "allow_any_organization": body.get("allow_any_organization", False),
                 "is_system": False, "subject_type": body.get("subject_type", "client"), "_seq": self._seq}
        for opt in ("organization_usage", "authorization_details_types", "allow_all_scopes"):
            if opt in body:
                grant[opt] = body[opt]
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
        grant.update(body)
        return Response(200, self._grant_view(grant))

    @route("DELETE", r"/api/v2/client-grants/(?P<id>[^/]+)", "client_grants.delete")
    def delete_grant(self, req: Request) -> Response:
        del self.grants[self._grant(req.params["id"])["id"]]
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
        if req.arg("from") is not None or req.arg("take") is not None:
            # Checkpoint pagination: {client_grants, next}; next is opaque and absent on the last page
            # (ListClientGrantPaginatedResponseContent in auth0-python 6.8). include_totals does not apply.
            take = self._int_arg(req, "take", 50, minimum=1, maximum=100)
            start = self._decode_checkpoint(req.arg("from")) if req.arg("from") else 0
            rest = [g for g in matching if g["_seq"] >= start]
            page, after = rest[:take], rest[take:]
            body = {"client_grants": [self._grant_view(g) for g in page]}
            if after:
                body["next"] = base64.urlsafe_b64encode(f"cgr:{after[0]['_seq']}".encode()).decode().rstrip("=")
            return Response(200, body)
        totals = self._bool_arg(req, "include_totals", False)
        if req.arg("page") is None and req.arg("per_page") is None:
            window, page, per_page = matching, 0, len(matching)  # "Paging is disabled if parameter not sent."
        else:
            page = self._int_arg(req, "page", 0, minimum=0)
            per_page = self._int_arg(req, "per_page", 50, minimum=1, maximum=100)
            window = matching[page * per_page:(page + 1) * per_page]
        items = [self._grant_view(g) for g in window]
        if totals:
            return Response(200, {"client_grants": items, "start": page * per_page, "limit": per_page,
                                  "total": len(matching)})
        return Response(200, items)

    @staticmethod
    def _decode_checkpoint(token: str) -> int:
        try:
            kind, _, seq = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition(":")
            if kind == "cgr" and seq.isdigit():
                return int(seq)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
        raise HttpError(400, "invalid_paging", "Invalid value for the from parameter")

    # -- query string helpers ----------------------------------------------------------------------------------------
    @staticmethod
    def _check_query(req: Request, allowed: set[str]) -> None:
        extra = [k for k in req.query if k not in allowed]
        if extra:
            raise HttpError(400, "invalid_query_string",
                            f"Query validation error: 'Additional properties not allowed: {','.join(extra)}'.")

    @staticmethod
    def _bool_arg(req: Request, name: str, default):
        value = req.arg(name)
        if value is None:
            return default
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise query_error("Expected type boolean but found type string", name)

    @staticmethod
    def _int_arg(req: Request, name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        value = req.arg(name)
        if value is None:
            return default
        if not re.fullmatch(r"-?\d+", value):
            raise query_error("Expected type integer but found type string", name)
        number = int(value)
        if minimum is not None and number < minimum:
            raise query_error(f"Value {number} is less than minimum {minimum}", name)
        if maximum is not None and number > maximum:
            raise query_error(f"Value {number} is greater than maximum {maximum}", name)
        return number
