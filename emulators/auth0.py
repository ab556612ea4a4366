"""A stand-in for the parts of Auth0 this project uses: ``POST /oauth/token`` and the Management API v2 for clients
(applications), client grants, organizations and connections, plus the tenant's discovery documents, signing keys,
resource servers and settings. This module holds the tenant itself (state, configuration, authentication, rate
limit); the routes are mixins, one module each: ``auth0_token.py`` (the token endpoint, organizations in tokens
included), ``auth0_clients.py``, ``auth0_grants.py``, ``auth0_organizations.py`` (organizations, their enabled
connections and client-grant associations), ``auth0_connections.py``, ``auth0_tenant.py`` (discovery, signing keys,
resource servers, tenant settings); paging in ``auth0_query.py``, request schemas in ``auth0_schema.py`` and
``auth0_org_schema.py``, keys and token claims in ``auth0_signing.py``.

Tokens are Auth0's: RS256 with a ``kid`` of the published JWKS, ``iss`` = ``https://{domain}/``, and for client
credentials ``sub`` = ``{client_id}@clients``, ``azp``, ``aud``, ``iat``, ``exp``, ``scope``, ``gty`` (and
``org_id``/``org_name`` for a token requested for an organization); the Management API accepts only such tokens
signed by a key not revoked, for its own audience. A management client given to the constructor has a real client
grant to the Management API (all of ``MANAGEMENT_SCOPES``), which the tenant command narrows like any grant.

auth0-python 6.x runs unchanged against it: ``ManagementClient(domain="127.0.0.1:<port>", ...)`` builds
``https://{domain}/api/v2`` and ``https://{domain}/oauth/token`` (``management/management_client.py`` and
``management/token_provider.py``), so the stand-in serves TLS and its Management API audience is
``https://{domain}/api/v2/`` with ``domain`` defaulting to ``host:port``. The SDK's token provider opens its own
``httpx.Client()``; httpx 0.28 (``_config.create_ssl_context``) trusts ``SSL_CERT_FILE`` when it is set, so point
that variable at the local CA before creating a ``ManagementClient`` with ``client_id``/``client_secret``.

Contract sources: the Management API v2 reference (https://auth0.com/docs/api/management/v2), the request and
response schemas as generated into auth0-python 6.8 (``clients/``, ``client_grants/``, ``organizations/``,
``types/``), error texts quoted in public issues or recorded from a real tenant (cited next to each behaviour).

Control-API configuration (``PATCH /_control/config``): ``rate``, ``burst``, ``token_lifetime``, ``max_clients``,
``secret_propagation_seconds``, ``max_organizations``, ``max_org_client_grants``, ``connections`` (connections to
add by name) and ``org_names_in_tokens`` (the tenant setting ``allow_organization_name_in_authentication_api``).

Operation names (for fault injection, call counters, chaos and benchmarks):
    oauth.token
    clients.create  clients.get  clients.list  clients.update  clients.delete  clients.rotate_secret
    client_grants.create  client_grants.get  client_grants.list  client_grants.update  client_grants.delete
    client_grants.organizations
    organizations.create  .list  .get  .get_by_name  .update  .delete
    organizations.connections.list  .add  .get  .update  .delete
    organizations.client_grants.list  .create  .delete
    connections.list  connections.get  tenant_settings.get  tenant_settings.update
    discovery.openid_configuration  discovery.jwks  signing_keys.list  .get  .rotate  .revoke
    resource_servers.list  .get  .create  .update  .delete
"""
from __future__ import annotations

import http

from .auth0_clients import ClientRoutes
from .auth0_connections import CONNECTION_SCOPES, DEFAULT_CONNECTIONS, ConnectionRoutes
from .auth0_grants import GrantRoutes
from .auth0_org_schema import MAX_CLIENT_GRANTS_PER_ORGANIZATION, MAX_ORGANIZATIONS
from .auth0_organizations import ORGANIZATION_SCOPES, OrganizationRoutes
from .auth0_query import QueryHelpers
from .auth0_schema import ALNUM, random_string
from .auth0_signing import SigningKeys, TokenRejected
from .auth0_tenant import RESOURCE_SERVER_SCOPES, TENANT_SCOPES, TenantRoutes
from .auth0_token import TokenRoutes
from .http_standin import HttpError, HttpStandIn, Request, bearer_token
from .ratelimit import TokenBucket

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
    **ORGANIZATION_SCOPES,
    **CONNECTION_SCOPES,
}
#: scopes of the Management API that this stand-in serves; a management client given to the constructor starts with
#: a client grant of all of them (the tenant command narrows the app's to what it uses)
MANAGEMENT_SCOPES = ("read:clients", "create:clients", "update:clients", "delete:clients", "read:client_keys",
                     "update:client_keys", "read:client_grants", "create:client_grants", "update:client_grants",
                     "delete:client_grants") + TENANT_SCOPES + tuple(sorted(
                         {s for op, scopes in {**ORGANIZATION_SCOPES, **CONNECTION_SCOPES}.items() for s in scopes}))

DEFAULT_APIS = {"https://api.contoso.local/": ["read:data", "write:data"]}

class Auth0StandIn(TokenRoutes, ClientRoutes, GrantRoutes, OrganizationRoutes, ConnectionRoutes, TenantRoutes,
                   QueryHelpers, HttpStandIn):
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
        self.organizations: dict[str, dict] = {}
        #: {organization_id, connection_id, options...}: an organization's enabled connections
        self.org_connections: list[dict] = []
        #: {organization_id, grant_id}: client grants associated with organizations
        self.org_grants: list[dict] = []
        self.connections: dict[str, dict] = {}
        self.tenant_settings: dict = {}
        #: Entity Limit Policy: organizations per tenant, M2M client grants per organization (None: no limit)
        self.max_organizations: int | None = MAX_ORGANIZATIONS
        self.max_org_client_grants: int | None = MAX_CLIENT_GRANTS_PER_ORGANIZATION
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

    @property
    def management_scopes(self) -> tuple[str, ...]:
        return MANAGEMENT_SCOPES

    # -- state ---------------------------------------------------------------------------------------------------
    def dump_state(self) -> dict:
        # Secrets are stored under their Auth0 name, ``client_secret``, in each client record.
        return {"clients": list(self.clients.values()), "client_grants": list(self.grants.values()),
                "organizations": list(self.organizations.values()),
                "organization_connections": list(self.org_connections),
                "organization_client_grants": list(self.org_grants),
                "connections": list(self.connections.values()), "tenant_settings": dict(self.tenant_settings),
                "resource_servers": list(self.resource_servers.values()), "signing_keys": self.signing.dump(),
                "management_client_ids": list(self.management_clients), "seq": self._seq}

    def load_state(self, state: dict) -> None:
        self.clients = {c["client_id"]: dict(c) for c in state.get("clients", [])}
        self.grants = {g["id"]: dict(g) for g in state.get("client_grants", [])}
        self.organizations = {o["id"]: dict(o) for o in state.get("organizations", [])}
        self.org_connections = [dict(c) for c in state.get("organization_connections", [])]
        self.org_grants = [dict(a) for a in state.get("organization_client_grants", [])]
        self.connections = {c["id"]: dict(c) for c in state.get("connections", [])}
        self.tenant_settings = dict(state.get("tenant_settings", {}))
        self._seq = int(state.get("seq", 0))
        if "connections" not in state:
            self.seed_connections(DEFAULT_CONNECTIONS)  # a new tenant's database connection
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
                "max_clients": self.max_clients, "secret_propagation_seconds": self.secret_propagation_seconds,
                "max_organizations": self.max_organizations, "max_org_client_grants": self.max_org_client_grants,
                "connections": sorted(c["name"] for c in self.connections.values()),
                "org_names_in_tokens": self.org_names_in_tokens}

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
        for key in ("max_clients", "max_organizations", "max_org_client_grants"):
            if key in values:
                setattr(self, key, None if values[key] is None else int(values[key]))
        if "connections" in values:
            self.seed_connections(values["connections"])
        if "org_names_in_tokens" in values:
            self.tenant_settings["allow_organization_name_in_authentication_api"] = bool(values["org_names_in_tokens"])
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
        body = {"statusCode": err.status, "error": phrase, "message": err.message, "errorCode": err.code}
        if err.extra.get("no_error_code"):
            del body["errorCode"]  # as recorded from a tenant for some answers (a missing organization)
        return body

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

