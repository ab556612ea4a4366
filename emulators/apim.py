"""Azure API Management, management plane (Azure Resource Manager, api-version 2024-05-01).

Serves the slice of ARM that ``azure-mgmt-apimanagement`` 5.0.0 calls for one API Management instance:

    /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{svc}[/...]

Shapes follow Azure/azure-rest-api-specs ``specification/apimanagement/resource-manager/Microsoft.ApiManagement/
stable/2024-05-01/`` (``apimauthorizationservers.json``, ``apimsubscriptions.json``, ``apimproducts.json``,
``apimdeployment.json``, ``definitions.json`` and their ``examples/``), referred to below as "spec".

Operation names (fault injection, call counters):

    service.get
    authorization_servers.list  .get  .get_entity_tag  .create_or_update  .update  .delete  .list_secrets
    subscriptions.list  .get  .get_entity_tag  .create_or_update  .update  .delete  .list_secrets
    subscriptions.regenerate_primary_key  .regenerate_secondary_key
    products.list  .get  .get_entity_tag

Control API config keys (``PATCH /_control/config``): ``sku``, ``sku_capacity``, ``authorization_server_limit``
(``null`` = the tier's limit), ``page_size`` (list page size without ``$top``), ``if_match_required``,
``arm_limits`` (``{"reads": [rate, burst], "writes": [...], "deletes": [...]}``, ``null`` = no throttling; a change
starts new, full buckets).

ARM throttling (Microsoft, "Understand how Azure Resource Manager throttles requests"): token buckets per principal
(the token's ``oid``, else ``appid``/``sub``) and operation kind: reads (GET, HEAD), writes (PUT, PATCH, POST) and
deletes. Every answer carries ``x-ms-ratelimit-remaining-subscription-reads``/``-writes``/``-deletes`` for its kind;
an empty bucket answers 429 ``TooManyRequests`` with ``Retry-After`` (seconds, rounded up). ``ARM_LIMITS`` holds the
documented sizes and rates; the stand-in applies them when given ``arm_limits`` (``python -m emulators up`` does).

Client set-up (azure-core refuses a bearer token over plain http, so this stand-in serves TLS only)::

    ApiManagementClient(credential, standin.subscription_id, base_url=standin.url,
                        connection_verify=str(tls.ca_cert))

with a credential whose tokens come from the same :class:`TokenIssuer` (``IdentityStandIn`` +
``ManagedIdentityCredential``/``DefaultAzureCredential``). The SDK asks for ``https://management.azure.com/.default``;
the token's audience must be one ARM accepts.

Behaviours worth knowing (sources next to the code):

- Every request: bearer token (401 ``AuthenticationFailed`` / ``InvalidAuthenticationToken`` /
  ``InvalidAuthenticationTokenAudience`` / ``ExpiredAuthenticationToken``), then ``api-version=2024-05-01``
  (400 ``MissingApiVersionParameter`` / ``InvalidApiVersionParameter``), then subscription, resource group and
  service (404 ``SubscriptionNotFound`` / ``ResourceGroupNotFound`` / ``ResourceNotFound``).
- Secrets never appear in GET/PUT/PATCH/list bodies: ``clientSecret``, ``resourceOwnerUsername``,
  ``resourceOwnerPassword`` of authorization servers and ``primaryKey``/``secondaryKey`` of subscriptions;
  ``POST .../listSecrets`` returns them.
- ETags: opaque, quoted, a new one on every change; PUT ``If-Match`` optional (upsert), PATCH/DELETE need it
  (``*`` allowed), a stale one answers 412 ``PreconditionFailed``.
- Invalid bodies answer 400 ``ValidationError`` with ``details`` (``target`` = field), as APIM does.
- Authorization servers are capped per tier (``AUTHORIZATION_SERVER_LIMITS``); the cap answers 400
  ``ValidationError`` "Authorization servers limit reached ...".

Known deviations (kept on purpose):

- Only api-version 2024-05-01 is served, where ARM accepts the older ones too. Every other version answers
  ``InvalidApiVersionParameter``; for a well-formed version the resource type does not know, ARM may answer
  ``NoRegisteredProviderFound`` instead (not verified).
- Users and APIs are not modelled: ``ownerId`` is checked for form only, ``/apis/{id}`` scopes are accepted unless
  ``apis=[...]`` lists the known API ids. Products are read-only, seeded from the constructor.
- A missing ``If-Match`` on PATCH/DELETE answers 400 because the spec marks the header required; the real service
  appears to tolerate it on DELETE (terraform-provider-azurerm deletes subscriptions without it), so
  ``set_config({"if_match_required": False})`` turns the check off.
- Lists honour ``$top`` as the page size (a ``nextLink`` carries ``$top``/``$skip``) and a small ``$filter`` subset.
"""
from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import secrets
import time
import urllib.parse
import uuid
from typing import Any

from .http_standin import HttpError, HttpStandIn, Request, Response, bearer_token, route
from .ratelimit import TokenBucket
from .tls import TlsFiles
from .tokens import TokenError, TokenIssuer

API_VERSION = "2024-05-01"

# ARM's accepted audiences, quoted from its InvalidAuthenticationTokenAudience message
# (e.g. Azure-Samples/active-directory-dotnetcore-daemon-v2#145).
ARM_AUDIENCES = ("https://management.core.windows.net/", "https://management.core.windows.net",
                 "https://management.azure.com/", "https://management.azure.com")

# Authorization servers per instance. Source: "API Management limits" in
# https://learn.microsoft.com/azure/azure-resource-manager/management/azure-subscription-service-limits
# (classic tiers) and the v2 tiers table. Isolated is not listed there: no cap.
AUTHORIZATION_SERVER_LIMITS = {"Consumption": 10, "Developer": 10, "Basic": 10, "Standard": 500, "Premium": 500,
                               "BasicV2": 10, "StandardV2": 500}
SKUS = ("Consumption", "Developer", "Basic", "Standard", "Premium", "Isolated", "BasicV2", "StandardV2")

DEFAULT_PRODUCTS = [
    {"id": "oem", "displayName": "OEM partners", "state": "published", "subscriptionRequired": True},
    {"id": "partners", "displayName": "Partners", "state": "published", "subscriptionRequired": True},
]

# spec: apimanagement.json parameters AuthenticationServerIdParameter / SubscriptionEntityIdParameter /
# ProductIdParameter
ENTITY_ID = re.compile(r"^[^*#&+:<>?]+$")
ID_MAX = {"authorizationServers": 80, "subscriptions": 256, "products": 256}

# spec: definitions.json AuthorizationServerContractBaseProperties / AuthorizationServerContractProperties
GRANT_TYPES = ("authorizationCode", "implicit", "resourceOwnerPassword", "clientCredentials")
AUTHORIZATION_METHODS = ("HEAD", "OPTIONS", "TRACE", "GET", "POST", "PUT", "PATCH", "DELETE")
CLIENT_AUTH_METHODS = ("Basic", "Body")
BEARER_METHODS = ("authorizationHeader", "query")
AS_REQUIRED = ("displayName", "clientRegistrationEndpoint", "authorizationEndpoint", "clientId", "grantTypes")
AS_STRINGS = ("displayName", "description", "clientRegistrationEndpoint", "authorizationEndpoint", "tokenEndpoint",
              "defaultScope", "clientId", "clientSecret", "resourceOwnerUsername", "resourceOwnerPassword")
AS_URLS = ("clientRegistrationEndpoint", "authorizationEndpoint", "tokenEndpoint")
AS_BOOLS = ("useInTestConsole", "useInApiDocumentation", "supportState")
AS_ENUM_LISTS = {"grantTypes": GRANT_TYPES, "authorizationMethods": AUTHORIZATION_METHODS,
                 "clientAuthenticationMethod": CLIENT_AUTH_METHODS, "bearerTokenSendingMethods": BEARER_METHODS}
# Not in GET bodies since 2020-12-01 (Azure/azure-rest-api-specs#14128; the spec's x-ms-secret / "will not be filled
# on 'GET' operations"); POST listSecrets returns them.
AS_SECRETS = ("clientSecret", "resourceOwnerUsername", "resourceOwnerPassword")
AS_FIELDS = set(AS_STRINGS) | set(AS_BOOLS) | set(AS_ENUM_LISTS) | {"tokenBodyParameters"}

# spec: definitions.json SubscriptionCreateParameterProperties / SubscriptionUpdateParameterProperties
SUBSCRIPTION_STATES = ("suspended", "active", "expired", "submitted", "rejected", "cancelled")
SUB_SECRETS = ("primaryKey", "secondaryKey")

_SVC = (r"/(?i:subscriptions)/(?P<sub>[^/]+)/(?i:resourceGroups)/(?P<rg>[^/]+)"
        r"/(?i:providers/Microsoft\.ApiManagement/service)/(?P<svc>[^/]+)")
_AS = _SVC + r"/(?i:authorizationServers)"
_SUBS = _SVC + r"/(?i:subscriptions)"
_PRODUCTS = _SVC + r"/(?i:products)"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _same_tag(a: str, b: str) -> bool:
    def norm(tag: str) -> str:
        tag = tag.strip()
        return (tag[2:] if tag.startswith("W/") else tag).strip('"')
    return norm(a) == norm(b)


def _is_url(value: Any) -> bool:
    parts = urllib.parse.urlsplit(value) if isinstance(value, str) else None
    return bool(parts and parts.scheme in ("http", "https") and parts.netloc)


class _Problems:
    """Collects field errors and raises them as one APIM ValidationError (400 with ``details``).

    Shape as APIM answers it, e.g. Azure/apiops#491:
    {"error":{"code":"ValidationError","message":"One or more fields contain incorrect values:",
              "details":[{"code":"ValidationError","target":"credentials","message":"..."}]}}
    """

    def __init__(self):
        self.items: list[dict] = []

    def add(self, target: str, message: str) -> None:
        self.items.append({"code": "ValidationError", "target": target, "message": message})

    def raise_any(self) -> None:
        if self.items:
            raise HttpError(400, "ValidationError", "One or more fields contain incorrect values:", details=self.items)


def _validation_error(target: str, message: str) -> HttpError:
    p = _Problems()
    p.add(target, message)
    return HttpError(400, "ValidationError", "One or more fields contain incorrect values:", details=p.items)


#: ARM's per-principal buckets: kind -> (refill per second, size)
ARM_LIMITS = {"reads": (25.0, 250), "writes": (10.0, 200), "deletes": (10.0, 200)}


def arm_kind(method: str) -> str:
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


class ArmThrottle:
    """ARM's token buckets, one per (principal, kind)."""

    def __init__(self, limits: dict[str, tuple[float, int]]):
        self.limits = {k: (float(v[0]), int(v[1])) for k, v in limits.items()}
        for rate, burst in self.limits.values():
            if rate <= 0 or burst < 1:
                raise ValueError("ARM limits need a positive rate and a burst of at least 1")
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self.throttled = 0

    def take(self, principal: str, kind: str) -> tuple[bool, dict[str, str]]:
        if kind not in self.limits:
            return True, {}
        bucket = self._buckets.get((principal, kind))
        if bucket is None:
            rate, burst = self.limits[kind]
            bucket = self._buckets[(principal, kind)] = TokenBucket(rate, burst)
        allowed, h = bucket.take()
        headers = {f"x-ms-ratelimit-remaining-subscription-{kind}": h["x-ratelimit-remaining"]}
        if not allowed:
            self.throttled += 1
            headers["Retry-After"] = str(max(1, int(float(h["x-ratelimit-reset"]) - time.time() + 0.999)))
        return allowed, headers


class ApimStandIn(HttpStandIn):
    name = "apim"

    def __init__(self, issuer: TokenIssuer, *, tls: TlsFiles,
                 subscription_id: str = "00000000-0000-4000-8000-000000000001",
                 resource_group: str = "rg-local", service_name: str = "apim-local",
                 sku: str = "Developer", sku_capacity: int = 1, products: list[dict] | None = None,
                 authorization_server_limit: int | None = None, apis: list[str] | None = None,
                 location: str = "West Europe", publisher_email: str = "apim@example.com",
                 publisher_name: str = "Local stack", page_size: int = 100,
                 arm_limits: dict[str, tuple[float, int]] | None = None, **kw):
        if tls is None:
            raise ValueError("the API Management stand-in needs TLS: azure-core sends bearer tokens over https only")
        self.issuer = issuer
        self.subscription_id, self.resource_group, self.service_name = subscription_id, resource_group, service_name
        self.sku = self._check_sku(sku)
        self.sku_capacity = int(sku_capacity)
        self._limit_override = authorization_server_limit
        self.apis = None if apis is None else {a.lower() for a in apis}
        self.location, self.publisher_email, self.publisher_name = location, publisher_email, publisher_name
        self.page_size = int(page_size)
        self.if_match_required = True
        self.arm = ArmThrottle(arm_limits) if arm_limits else None
        self._configured_products = copy.deepcopy(DEFAULT_PRODUCTS if products is None else products)
        self.service_id = (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
                           f"/providers/Microsoft.ApiManagement/service/{service_name}")
        self._created = _now()
        self.load_state({})
        super().__init__(tls=tls, **kw)

    # -- configuration ---------------------------------------------------------------------------
    @staticmethod
    def _check_sku(sku: str) -> str:
        for known in SKUS:
            if known.lower() == str(sku).lower():
                return known
        raise ValueError(f"unknown API Management sku {sku!r}; expected one of {', '.join(SKUS)}")

    @property
    def authorization_server_limit(self) -> int | None:
        if self._limit_override is not None:
            return self._limit_override
        return AUTHORIZATION_SERVER_LIMITS.get(self.sku)

    def get_config(self) -> dict:
        return {**super().get_config(), "sku": self.sku, "sku_capacity": self.sku_capacity,
                "authorization_server_limit": self.authorization_server_limit, "page_size": self.page_size,
                "if_match_required": self.if_match_required,
                "arm_limits": self.arm.limits if self.arm else None, "arm_throttled": self.arm.throttled if self.arm else 0}

    def set_config(self, values: dict) -> None:
        super().set_config(values)
        if "sku" in values:
            try:
                self.sku = self._check_sku(values["sku"])
            except ValueError as exc:
                raise HttpError(400, "invalid_config", str(exc)) from None
        if "sku_capacity" in values:
            self.sku_capacity = int(values["sku_capacity"])
        if "authorization_server_limit" in values:  # None: back to the tier's limit
            v = values["authorization_server_limit"]
            self._limit_override = None if v is None else int(v)
        if "page_size" in values:
            self.page_size = max(1, int(values["page_size"]))
        if "if_match_required" in values:
            self.if_match_required = bool(values["if_match_required"])
        if "arm_limits" in values:
            try:
                self.arm = ArmThrottle(values["arm_limits"]) if values["arm_limits"] else None
            except (TypeError, ValueError, IndexError) as exc:
                raise HttpError(400, "invalid_config", str(exc)) from None

    # -- state -----------------------------------------------------------------------------------
    def _seed_products(self) -> dict:
        out = {}
        for p in self._configured_products:
            props = {"displayName": p.get("displayName", p["id"]),
                     "subscriptionRequired": p.get("subscriptionRequired", True),
                     "state": p.get("state", "notPublished")}  # spec: "Default state of Product is notPublished"
            for k in ("description", "terms", "approvalRequired", "subscriptionsLimit"):
                if k in p:
                    props[k] = p[k]
            out[p["id"].lower()] = {"name": p["id"], "properties": props, "version": 1}
        return out

    def subscription_with_key(self, key: str) -> dict | None:
        """The subscription one of whose keys is ``key`` (the local gateway's lookup), as stored."""
        with self.lock:
            found = next((s for s in self._store["subscriptions"].values()
                          if key in (s["properties"].get("primaryKey"), s["properties"].get("secondaryKey"))), None)
            return copy.deepcopy(found)

    def dump_state(self) -> dict:
        return copy.deepcopy({"authorizationServers": self._store["authorizationServers"],
                              "subscriptions": self._store["subscriptions"],
                              "products": self._store["products"], "version": self._version})

    def load_state(self, state: dict) -> None:
        state = copy.deepcopy(state or {})
        self._store = {"authorizationServers": state.get("authorizationServers", {}),
                       "subscriptions": state.get("subscriptions", {}),
                       "products": state["products"] if "products" in state else self._seed_products()}
        self._version = int(state.get("version", 1))

    # -- ARM envelope ----------------------------------------------------------------------------
    def error_body(self, err: HttpError) -> Any:
        body = {"code": err.code, "message": err.message}
        if "details" in err.extra:
            body["details"] = err.extra["details"]
        return {"error": body}

    def before(self, req: Request) -> dict[str, str]:
        principal = self._authenticate(req)
        headers = {"x-ms-request-id": str(uuid.uuid4())}
        if self.arm is not None:
            with self.lock:
                allowed, limit_headers = self.arm.take(principal, arm_kind(req.method))
            headers.update(limit_headers)
            req.arm_headers = limit_headers
            if not allowed:
                # ARM's wording (learn.microsoft.com, "Understand how Azure Resource Manager throttles requests")
                raise HttpError(429, "TooManyRequests", "The request is being throttled as the limit has been "
                                "reached for operation type - " + arm_kind(req.method).capitalize()[:-1] + ".",
                                headers=headers)
        version = req.arg("api-version")
        if version is None:
            # ARM's wording, e.g. MicrosoftDocs/feedback#2279
            raise HttpError(400, "MissingApiVersionParameter",
                            "The api-version query parameter (?api-version=) is required for all requests.")
        if version != API_VERSION:
            # ARM's wording, e.g. Azure/azure-cli#28038
            raise HttpError(400, "InvalidApiVersionParameter",
                            f"The api-version '{version}' is invalid. The supported versions are '{API_VERSION}'.")
        p = req.params
        if p["sub"].lower() != self.subscription_id.lower():
            raise HttpError(404, "SubscriptionNotFound", f"The subscription '{p['sub']}' could not be found.")
        if p["rg"].lower() != self.resource_group.lower():
            raise HttpError(404, "ResourceGroupNotFound", f"Resource group '{p['rg']}' could not be found.")
        if p["svc"].lower() != self.service_name.lower():
            raise HttpError(404, "ResourceNotFound",
                            f"The Resource 'Microsoft.ApiManagement/service/{p['svc']}' under resource group "
                            f"'{p['rg']}' was not found. For more details please go to "
                            "https://aka.ms/ARMResourceNotFoundFix")
        return headers

    def _run(self, fn, req, handler):
        # ARM's rate-limit headers go on every answer, errors included; the base only adds them to successes.
        try:
            return super()._run(fn, req, handler)
        except HttpError as err:
            for k, v in getattr(req, "arm_headers", {}).items():
                err.headers.setdefault(k, v)
            raise

    def _authenticate(self, req: Request) -> str:
        """Checks the bearer token; returns the principal it names (ARM throttles per principal)."""
        # ARM's codes and messages, e.g. hashicorp/terraform-provider-azurerm#3612 (missing header),
        # Azure/azure-sdk-for-python#4124 (bad format), JetBrains/azure-tools-for-intellij#16 (audience).
        def fail(code: str, message: str, description: str):
            challenge = ('Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
                         f'error_description="{description}"')
            return HttpError(401, code, message, headers={"WWW-Authenticate": challenge})

        if not req.headers.get("Authorization"):
            raise fail("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
                       "The authentication failed because of missing 'Authorization' header.")
        token = bearer_token(req)
        if token is None:
            raise fail("AuthenticationFailedInvalidHeader",
                       "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                       "The authentication failed because of invalid 'Authorization' header.")
        try:
            self.issuer.verify(token, ARM_AUDIENCES)
        except TokenError as exc:
            reason = str(exc)
            if reason.startswith("invalid audience"):
                allowed = ",".join(f"'{a}'" for a in ARM_AUDIENCES)
                raise fail("InvalidAuthenticationTokenAudience",
                           f"The access token has been obtained for wrong audience or resource "
                           f"'{self._claims(token).get('aud')}'. It should exactly match with one of the allowed "
                           f"audiences {allowed}.", "The access token has an invalid audience.") from None
            if reason == "token expired":
                fmt = "%m/%d/%Y %I:%M:%S %p"
                expiry = dt.datetime.fromtimestamp(self._claims(token).get("exp", 0), dt.timezone.utc)
                raise fail("ExpiredAuthenticationToken",
                           f"The access token expiry UTC time '{expiry.strftime(fmt)}' is earlier than current UTC "
                           f"time '{dt.datetime.now(dt.timezone.utc).strftime(fmt)}'.",
                           "The access token has expired.") from None
            raise fail("InvalidAuthenticationToken", "The access token is invalid.",
                       "The access token is invalid.") from None
        claims = self._claims(token)
        return str(claims.get("oid") or claims.get("appid") or claims.get("sub") or "")

    @staticmethod
    def _claims(token: str) -> dict:
        try:
            body = token.split(".")[1]
            return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (IndexError, ValueError):
            return {}

    # -- shared entity helpers -------------------------------------------------------------------
    def _etag(self, entity: dict) -> str:
        # APIM's ETags look like "AAAAAAAWN/4=" (spec example ApiManagementServiceGetService.json).
        return '"' + base64.b64encode(int(entity["version"]).to_bytes(8, "big")).decode() + '"'

    def _touch(self, entity: dict) -> None:
        self._version += 1
        entity["version"] = self._version

    def _check_id(self, kind: str, param: str, value: str) -> None:
        if not (1 <= len(value) <= ID_MAX[kind]) or not ENTITY_ID.match(value):
            raise _validation_error(param, f"'{value}' is not a valid identifier: 1-{ID_MAX[kind]} characters, "
                                           "none of * # & + : < > ?")

    def _find(self, kind: str, name: str, label: str) -> dict:
        entity = self._store[kind].get(name.lower())
        if entity is None:
            raise HttpError(404, "ResourceNotFound", f"{label} not found.")
        return entity

    def _require_if_match(self, req: Request) -> None:
        """PATCH and DELETE declare If-Match required (spec: IfMatchRequiredParameter); checked before the entity."""
        if self.if_match_required and not (req.headers.get("If-Match") or "").strip():
            raise _validation_error("If-Match", "The If-Match header is required: pass the entity's ETag, "
                                                "or * for an unconditional change.")

    def _if_match(self, req: Request, entity: dict | None) -> None:
        """Optimistic concurrency as APIM documents it: the ETag of a GET, or ``*`` for unconditional."""
        raw = (req.headers.get("If-Match") or "").strip()
        if not raw or raw == "*":
            return
        if entity is None or not any(_same_tag(t, self._etag(entity)) for t in raw.split(",")):
            # APIM's code, e.g. hashicorp/terraform-provider-azurerm#24942
            raise HttpError(412, "PreconditionFailed",
                            "Exception of type 'Microsoft.WindowsAzure.ApiManagement.Management.Core.Exceptions."
                            "PreconditionFailedException' was thrown.")

    @staticmethod
    def _properties(req: Request) -> dict:
        try:
            body = json.loads(req.body) if req.body else None
        except ValueError as exc:
            raise HttpError(400, "InvalidRequestContent",
                            f"The request content was invalid and could not be deserialized: '{exc}'.") from None
        if not isinstance(body, dict):
            raise HttpError(400, "InvalidRequestContent", "The request content must be a JSON object.")
        props = body.get("properties", {})
        if not isinstance(props, dict):
            raise _validation_error("properties", "properties must be an object.")
        return props

    def _view(self, kind: str, entity: dict, hidden: tuple[str, ...]) -> dict:
        return {"id": f"{self.service_id}/{kind}/{entity['name']}",
                "type": f"Microsoft.ApiManagement/service/{kind}",
                "name": entity["name"],
                "properties": {k: v for k, v in entity["properties"].items() if k not in hidden}}

    def _entity_response(self, status: int, kind: str, entity: dict, hidden: tuple[str, ...]) -> Response:
        return Response(status, self._view(kind, entity, hidden), {"ETag": self._etag(entity)})

    def _list(self, req: Request, kind: str, hidden: tuple[str, ...], fields: dict[str, str]) -> Response:
        """An APIM collection: ``{"value": [...], "count": n, "nextLink": ...}`` paged by ``$top``/``$skip``."""
        def number(name: str, minimum: int) -> int | None:
            raw = req.arg(name)
            if raw is None:
                return None
            if not raw.isdigit() or int(raw) < minimum:
                raise _validation_error(name, f"{name} must be an integer >= {minimum}.")
            return int(raw)

        top, skip = number("$top", 1), number("$skip", 0) or 0
        entities = sorted(self._store[kind].values(), key=lambda e: e["name"].lower())
        flt = req.arg("$filter")
        if flt:
            keep = self._filter(flt, fields)
            entities = [e for e in entities if keep(e)]
        size = top or self.page_size
        page = entities[skip:skip + size]
        body = {"value": [self._view(kind, e, hidden) for e in page], "count": len(entities)}
        if skip + size < len(entities):
            query = {"api-version": API_VERSION, "$top": str(size), "$skip": str(skip + size)}
            if flt:
                query["$filter"] = flt
            host = req.headers.get("Host") or f"{self.host}:{self.port}"
            body["nextLink"] = f"https://{host}{req.path}?{urllib.parse.urlencode(query)}"
        return Response(200, body)

    @staticmethod
    def _filter(expression: str, fields: dict[str, str]):
        """The OData subset the SDK documents for these lists: one ``field op 'value'`` or function clause."""
        m = re.fullmatch(r"\s*(\w+)\s+(eq|ne)\s+'((?:[^']|'')*)'\s*", expression)
        if m:
            field, op, value = m.group(1), m.group(2), m.group(3).replace("''", "'")
        else:
            m = re.fullmatch(r"\s*(startswith|endswith|contains)\(\s*(\w+)\s*,\s*'((?:[^']|'')*)'\s*\)\s*",
                             expression) or re.fullmatch(r"\s*(substringof)\(\s*'((?:[^']|'')*)'\s*,\s*(\w+)\s*\)\s*",
                                                         expression)
            if not m:
                raise _validation_error("$filter", f"Invalid filter clause '{expression}'.")
            if m.group(1) == "substringof":
                op, value, field = "contains", m.group(2).replace("''", "'"), m.group(3)
            else:
                op, field, value = m.group(1), m.group(2), m.group(3).replace("''", "'")
        if field not in fields:
            raise _validation_error("$filter", f"Filtering on '{field}' is not supported.")
        source, wanted = fields[field], value.lower()

        def keep(entity: dict) -> bool:
            actual = entity["name"] if source == "name" else entity["properties"].get(source)
            actual = "" if actual is None else str(actual).lower()
            return {"eq": actual == wanted, "ne": actual != wanted, "startswith": actual.startswith(wanted),
                    "endswith": actual.endswith(wanted), "contains": wanted in actual}[op]
        return keep

    # -- service ---------------------------------------------------------------------------------
    @route("GET", _SVC, "service.get")
    def get_service(self, req: Request) -> Response:
        # spec: ApiManagementServiceResource, example ApiManagementServiceGetService.json
        host = self.service_name.lower()
        etag = base64.b64encode((1).to_bytes(8, "big")).decode()
        body = {
            "id": self.service_id, "name": self.service_name, "type": "Microsoft.ApiManagement/service",
            "tags": {}, "location": self.location, "etag": etag,
            "sku": {"name": self.sku, "capacity": self.sku_capacity},
            "properties": {
                "publisherEmail": self.publisher_email, "publisherName": self.publisher_name,
                "notificationSenderEmail": "apimgmt-noreply@mail.windowsazure.com",
                "provisioningState": "Succeeded", "targetProvisioningState": "", "createdAtUtc": self._created,
                "gatewayUrl": f"https://{host}.azure-api.net",
                "portalUrl": f"https://{host}.portal.azure-api.net",
                "developerPortalUrl": f"https://{host}.developer.azure-api.net",
                "managementApiUrl": f"https://{host}.management.azure-api.net",
                "scmUrl": f"https://{host}.scm.azure-api.net",
                "hostnameConfigurations": [{"type": "Proxy", "hostName": f"{host}.azure-api.net",
                                            "negotiateClientCertificate": False, "defaultSslBinding": False,
                                            "certificateSource": "BuiltIn"}],
                "publicIPAddresses": ["127.0.0.1"], "virtualNetworkType": "None", "disableGateway": False,
                "publicNetworkAccess": "Enabled", "platformVersion": "stv2", "customProperties": {},
            },
        }
        return Response(200, body, {"ETag": f'"{etag}"'})

    # -- authorization servers -------------------------------------------------------------------
    def _validate_auth_server(self, props: dict, complete: bool) -> None:
        problems = _Problems()
        if complete:
            for field in AS_REQUIRED:
                if props.get(field) in (None, "", []):
                    problems.add(field, f"The {field} field is required.")
        for field in AS_STRINGS:
            if props.get(field) is not None and not isinstance(props[field], str):
                problems.add(field, f"{field} must be a string.")
        name = props.get("displayName")
        if isinstance(name, str) and not 1 <= len(name) <= 50:
            problems.add("displayName", "displayName must be 1 to 50 characters long.")
        for field in AS_URLS:
            if props.get(field) not in (None, "") and not _is_url(props[field]):
                problems.add(field, f"{field} must be an absolute URL.")
        for field in AS_BOOLS:
            if props.get(field) is not None and not isinstance(props[field], bool):
                problems.add(field, f"{field} must be a boolean.")
        for field, allowed in AS_ENUM_LISTS.items():
            values = props.get(field)
            if values is None:
                continue
            if not isinstance(values, list) or any(v not in allowed for v in values):
                problems.add(field, f"{field} must be a list of: {', '.join(allowed)}.")
            elif field == "grantTypes" and not values:
                problems.add(field, "At least one grant type is required.")
            elif field == "authorizationMethods" and "GET" not in values:
                problems.add(field, "GET must be always present.")  # spec: authorizationMethods description
        params = props.get("tokenBodyParameters")
        if params is not None and not (isinstance(params, list) and all(
                isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("value"), str)
                for p in params)):
            problems.add("tokenBodyParameters", "tokenBodyParameters must be a list of {name, value} strings.")
        problems.raise_any()

    @route("GET", _AS, "authorization_servers.list")
    def list_authorization_servers(self, req: Request) -> Response:
        return self._list(req, "authorizationServers", AS_SECRETS, {"name": "name", "displayName": "displayName"})

    @route("HEAD", _AS + r"/(?P<authsid>[^/]+)", "authorization_servers.get_entity_tag")
    def head_authorization_server(self, req: Request) -> Response:
        entity = self._find("authorizationServers", req.params["authsid"], "Authorization server")
        return Response(200, None, {"ETag": self._etag(entity)})

    @route("GET", _AS + r"/(?P<authsid>[^/]+)", "authorization_servers.get")
    def get_authorization_server(self, req: Request) -> Response:
        entity = self._find("authorizationServers", req.params["authsid"], "Authorization server")
        return self._entity_response(200, "authorizationServers", entity, AS_SECRETS)

    @route("PUT", _AS + r"/(?P<authsid>[^/]+)", "authorization_servers.create_or_update")
    def put_authorization_server(self, req: Request) -> Response:
        name = req.params["authsid"]
        self._check_id("authorizationServers", "authsid", name)
        props = self._properties(req)
        existing = self._store["authorizationServers"].get(name.lower())
        self._if_match(req, existing)
        self._validate_auth_server(props, complete=True)
        limit = self.authorization_server_limit
        if existing is None and limit is not None and len(self._store["authorizationServers"]) >= limit:
            # APIM reports entity caps as a 400 ValidationError without details, e.g.
            # {"code":"ValidationError","message":"Subscriptions limit reached for same user"} (Azure/apiops#623).
            raise HttpError(400, "ValidationError",
                            f"Authorization servers limit reached: the {self.sku} tier allows {limit} "
                            "authorization servers per service instance.", details=None)
        # Defaults from the spec's descriptions ("True/False by default if no value is provided", "GET must be
        # always present"); a PUT replaces the whole entity.
        stored = {"useInTestConsole": True, "useInApiDocumentation": False, "authorizationMethods": ["GET"]}
        stored.update({k: v for k, v in props.items() if k in AS_FIELDS and v is not None})
        entity = existing or {"name": name}
        entity["properties"] = stored
        self._touch(entity)
        self._store["authorizationServers"][name.lower()] = entity
        return self._entity_response(200 if existing else 201, "authorizationServers", entity, AS_SECRETS)

    @route("PATCH", _AS + r"/(?P<authsid>[^/]+)", "authorization_servers.update")
    def patch_authorization_server(self, req: Request) -> Response:
        self._require_if_match(req)
        entity = self._find("authorizationServers", req.params["authsid"], "Authorization server")
        self._if_match(req, entity)
        props = self._properties(req)
        self._validate_auth_server(props, complete=False)
        merged = {**entity["properties"], **{k: v for k, v in props.items() if k in AS_FIELDS}}
        merged = {k: v for k, v in merged.items() if v is not None}
        self._validate_auth_server(merged, complete=True)
        entity["properties"] = merged
        self._touch(entity)
        return self._entity_response(200, "authorizationServers", entity, AS_SECRETS)

    @route("DELETE", _AS + r"/(?P<authsid>[^/]+)", "authorization_servers.delete")
    def delete_authorization_server(self, req: Request) -> Response:
        self._require_if_match(req)
        entity = self._find("authorizationServers", req.params["authsid"], "Authorization server")
        self._if_match(req, entity)
        del self._store["authorizationServers"][entity["name"].lower()]
        return Response(200)

    @route("POST", _AS + r"/(?P<authsid>[^/]+)/(?i:listSecrets)", "authorization_servers.list_secrets")
    def authorization_server_secrets(self, req: Request) -> Response:
        entity = self._find("authorizationServers", req.params["authsid"], "Authorization server")
        body = {k: entity["properties"][k] for k in AS_SECRETS if k in entity["properties"]}
        return Response(200, body, {"ETag": self._etag(entity)})

    # -- subscriptions ---------------------------------------------------------------------------
    def _normalize_scope(self, scope: Any, problems: _Problems) -> str | None:
        """``/products/{id}``, ``/apis``, ``/apis/{id}`` or their full resource ids; stored as full ids, as the
        spec's examples return them (ApiManagementCreateSubscription.json)."""
        if not isinstance(scope, str):
            problems.add("scope", "scope must be a string.")
            return None
        rest = scope
        if scope.lower().startswith("/subscriptions/"):
            if not scope.lower().startswith(self.service_id.lower() + "/"):
                problems.add("scope", f"Scope '{scope}' does not belong to this API Management service.")
                return None
            rest = scope[len(self.service_id):]
        m = re.fullmatch(r"/(?i:products)/([^/]+)", rest)
        if m:
            product = self._store["products"].get(m.group(1).lower())
            if product is None:
                # An entity named in a body that does not exist: APIM answers ValidationError with the field as
                # target (cf. "Authorization server was not found." in Azure/apiops#734).
                problems.add("scope", "Product not found.")
                return None
            return f"{self.service_id}/products/{product['name']}"
        if re.fullmatch(r"/(?i:apis)", rest):
            return f"{self.service_id}/apis"
        m = re.fullmatch(r"/(?i:apis)/([^/]+)", rest)
        if m:
            if self.apis is not None and m.group(1).lower() not in self.apis:
                problems.add("scope", "API not found.")
                return None
            return f"{self.service_id}/apis/{m.group(1)}"
        problems.add("scope", f"Scope '{scope}' is invalid: use /products/{{productId}}, /apis or /apis/{{apiId}}.")
        return None

    def _normalize_owner(self, owner: Any, problems: _Problems) -> str | None:
        if isinstance(owner, str):
            rest = owner[len(self.service_id):] if owner.lower().startswith(self.service_id.lower() + "/") else owner
            m = re.fullmatch(r"/(?i:users)/([^/]+)", rest)
            if m:
                return f"{self.service_id}/users/{m.group(1)}"
        problems.add("ownerId", "ownerId must be a user identifier: /users/{userId}.")
        return None

    def _validate_subscription(self, props: dict, creating: bool) -> dict:
        """Checks ``props`` and returns the recognised fields, scope and owner normalised."""
        problems, out = _Problems(), {}
        if creating:
            for field in ("scope", "displayName"):
                if props.get(field) in (None, ""):
                    problems.add(field, f"The {field} field is required.")
        if props.get("scope") not in (None, ""):
            out["scope"] = self._normalize_scope(props["scope"], problems)
        if props.get("ownerId") is not None:
            out["ownerId"] = self._normalize_owner(props["ownerId"], problems)
        name = props.get("displayName")
        if name not in (None, ""):  # "" is a missing name on create, an allowed one on update (minLength 0)
            if not isinstance(name, str) or len(name) > 100:
                problems.add("displayName", "displayName must be a string of at most 100 characters.")
        if name is not None:
            out["displayName"] = name
        if props.get("state") is not None:
            if props["state"] not in SUBSCRIPTION_STATES:
                problems.add("state", f"state must be one of: {', '.join(SUBSCRIPTION_STATES)}.")
            out["state"] = props["state"]
        for key in SUB_SECRETS:
            if props.get(key) is not None:
                if not isinstance(props[key], str) or not 1 <= len(props[key]) <= 256:
                    problems.add(key, f"{key} must be 1 to 256 characters long.")
                out[key] = props[key]
        if props.get("allowTracing") is not None:
            if not isinstance(props["allowTracing"], bool):
                problems.add("allowTracing", "allowTracing must be a boolean.")
            out["allowTracing"] = props["allowTracing"]
        for key in ("stateComment",) if creating else ("stateComment", "expirationDate"):
            if props.get(key) is not None:
                if not isinstance(props[key], str):
                    problems.add(key, f"{key} must be a string.")
                out[key] = props[key]
        if isinstance(out.get("expirationDate"), str):
            try:
                dt.datetime.fromisoformat(out["expirationDate"].replace("Z", "+00:00"))
            except ValueError:
                problems.add("expirationDate", "expirationDate must be an ISO 8601 date-time.")
        problems.raise_any()
        return out

    def _check_product_limit(self, sid: str, props: dict) -> None:
        """A product's ``subscriptionsLimit`` caps subscriptions per user (spec: ProductContractProperties)."""
        scope, owner = props.get("scope", ""), props.get("ownerId")
        m = re.fullmatch(re.escape(self.service_id) + r"/products/([^/]+)", scope)
        product = self._store["products"].get(m.group(1).lower()) if m else None
        limit = product["properties"].get("subscriptionsLimit") if product else None
        if limit is None or owner is None:
            return
        taken = sum(1 for key, s in self._store["subscriptions"].items()
                    if key != sid.lower() and s["properties"].get("scope") == scope
                    and s["properties"].get("ownerId") == owner)
        if taken >= limit:
            # APIM's answer, Azure/apiops#623
            raise HttpError(400, "ValidationError", "Subscriptions limit reached for same user", details=None)

    @route("GET", _SUBS, "subscriptions.list")
    def list_subscriptions(self, req: Request) -> Response:
        return self._list(req, "subscriptions", SUB_SECRETS,
                          {"name": "name", "displayName": "displayName", "state": "state", "scope": "scope",
                           "ownerId": "ownerId", "stateComment": "stateComment"})

    @route("HEAD", _SUBS + r"/(?P<sid>[^/]+)", "subscriptions.get_entity_tag")
    def head_subscription(self, req: Request) -> Response:
        entity = self._find("subscriptions", req.params["sid"], "Subscription")
        return Response(200, None, {"ETag": self._etag(entity)})

    @route("GET", _SUBS + r"/(?P<sid>[^/]+)", "subscriptions.get")
    def get_subscription(self, req: Request) -> Response:
        entity = self._find("subscriptions", req.params["sid"], "Subscription")
        return self._entity_response(200, "subscriptions", entity, SUB_SECRETS)

    @route("PUT", _SUBS + r"/(?P<sid>[^/]+)", "subscriptions.create_or_update")
    def put_subscription(self, req: Request) -> Response:
        # Query parameters notify/appType are accepted and have no effect here (no e-mail, no portal).
        sid = req.params["sid"]
        self._check_id("subscriptions", "sid", sid)
        props = self._properties(req)
        existing = self._store["subscriptions"].get(sid.lower())
        self._if_match(req, existing)
        given = self._validate_subscription(props, creating=True)
        old = existing["properties"] if existing else {}
        stored = {
            "ownerId": given.get("ownerId"), "scope": given["scope"], "displayName": given["displayName"],
            # spec: "If no value is specified, subscription is created with Submitted state"; a replace keeps the
            # current state unless one is given.
            "state": given.get("state") or old.get("state", "submitted"),
            "createdDate": old.get("createdDate", _now()),
            # spec: "If not specified during request key will be generated automatically"
            "primaryKey": given.get("primaryKey") or old.get("primaryKey") or secrets.token_hex(16),
            "secondaryKey": given.get("secondaryKey") or old.get("secondaryKey") or secrets.token_hex(16),
            "allowTracing": given.get("allowTracing"), "stateComment": given.get("stateComment"),
        }
        stored = {k: v for k, v in stored.items() if v is not None}
        self._check_product_limit(sid, stored)
        entity = existing or {"name": sid}
        entity["properties"] = stored
        self._touch(entity)
        self._store["subscriptions"][sid.lower()] = entity
        return self._entity_response(200 if existing else 201, "subscriptions", entity, SUB_SECRETS)

    @route("PATCH", _SUBS + r"/(?P<sid>[^/]+)", "subscriptions.update")
    def patch_subscription(self, req: Request) -> Response:
        self._require_if_match(req)
        entity = self._find("subscriptions", req.params["sid"], "Subscription")
        self._if_match(req, entity)
        given = self._validate_subscription(self._properties(req), creating=False)
        merged = {**entity["properties"], **{k: v for k, v in given.items() if v is not None}}
        self._check_product_limit(entity["name"], merged)
        entity["properties"] = merged
        self._touch(entity)
        return self._entity_response(200, "subscriptions", entity, SUB_SECRETS)

    @route("DELETE", _SUBS + r"/(?P<sid>[^/]+)", "subscriptions.delete")
    def delete_subscription(self, req: Request) -> Response:
        self._require_if_match(req)
        entity = self._find("subscriptions", req.params["sid"], "Subscription")
        self._if_match(req, entity)
        del self._store["subscriptions"][entity["name"].lower()]
        return Response(200)

    @route("POST", _SUBS + r"/(?P<sid>[^/]+)/(?i:listSecrets)", "subscriptions.list_secrets")
    def subscription_secrets(self, req: Request) -> Response:
        entity = self._find("subscriptions", req.params["sid"], "Subscription")
        body = {k: entity["properties"][k] for k in SUB_SECRETS}
        return Response(200, body, {"ETag": self._etag(entity)})

    def _regenerate(self, req: Request, key: str) -> Response:
        entity = self._find("subscriptions", req.params["sid"], "Subscription")
        entity["properties"][key] = secrets.token_hex(16)
        self._touch(entity)
        return Response(204)  # spec: Subscription_RegeneratePrimaryKey / _RegenerateSecondaryKey answer 204

    @route("POST", _SUBS + r"/(?P<sid>[^/]+)/(?i:regeneratePrimaryKey)", "subscriptions.regenerate_primary_key")
    def regenerate_primary(self, req: Request) -> Response:
        return self._regenerate(req, "primaryKey")

    @route("POST", _SUBS + r"/(?P<sid>[^/]+)/(?i:regenerateSecondaryKey)", "subscriptions.regenerate_secondary_key")
    def regenerate_secondary(self, req: Request) -> Response:
        return self._regenerate(req, "secondaryKey")

    # -- products (read only, seeded from the constructor) ---------------------------------------
    @route("GET", _PRODUCTS, "products.list")
    def list_products(self, req: Request) -> Response:
        # expandGroups / tags query parameters are accepted and ignored (no groups or tags modelled).
        return self._list(req, "products", (), {"name": "name", "displayName": "displayName", "state": "state"})

    @route("HEAD", _PRODUCTS + r"/(?P<pid>[^/]+)", "products.get_entity_tag")
    def head_product(self, req: Request) -> Response:
        entity = self._find("products", req.params["pid"], "Product")
        return Response(200, None, {"ETag": self._etag(entity)})

    @route("GET", _PRODUCTS + r"/(?P<pid>[^/]+)", "products.get")
    def get_product(self, req: Request) -> Response:
        return self._entity_response(200, "products", self._find("products", req.params["pid"], "Product"), ())
