"""The API Management gateway, locally: the data plane beside the management-plane stand-in (``emulators/apim.py``).

A request goes through what Azure's gateway does, in its order:

1. the API by path (``infra/apim/customer-api.json``) and the operation by method and URL template; none:
   404 ``{"statusCode": 404, "message": "Resource not found"}``;
2. the subscription key, from the ``Ocp-Apim-Subscription-Key`` header or, only when the header is absent, the
   ``subscription-key`` query parameter (Microsoft, "Subscriptions in Azure API Management"). None: 401 *Access
   denied due to missing subscription key...*; a key that is not one of an **active** subscription's keys at a scope
   covering the API (a product that includes it, all APIs, or the API): 401 *Access denied due to invalid
   subscription key...*. The documentation answers 401 for a suspended or cancelled subscription too ("If a valid
   key for an active subscription at an appropriate scope is provided, access is allowed ... Otherwise, access is
   denied (401 Access denied error)"), and so does this gateway. Subscriptions and keys are read from the
   management-plane stand-in at each request: a deleted or suspended subscription stops working at once (Azure's
   gateway may lag by its configuration sync);
3. the policies: global (none here), product (none), the API's and the operation's documents, ``<base />`` joining
   them (``engine.py``);
4. ``forward-request`` to the backend, with the headers the policies left; the subscription-key query parameter
   is not passed on.

A policy expression that fails (a variable not set) answers 500, as Azure's ``ExpressionValueEvaluationFailure``.
Operation names for the control API's counters: ``gateway.request``.
"""
from __future__ import annotations

import http.client
import ssl
import urllib.parse

from ..http_standin import HttpError, HttpStandIn, Request, Response
from .api import ApiDefinition, load_api
from .engine import (GatewayResponse, PolicyEngine, RateLimits, RequestContext, Stop, Subscription,
                     error_response)
from .jwt_check import OpenIdConfigCache

MISSING_KEY = ("Access denied due to missing subscription key. Make sure to include subscription key when making "
               "requests to an API.")
INVALID_KEY = "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription."
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}


class GatewayStandIn(HttpStandIn):
    name = "gateway"

    def __init__(self, apim, *, backend_url: str, named_values: dict[str, str], ca_bundle: str | None = None,
                 products: list[str] | None = None, api: ApiDefinition | None = None, **kw):
        self.apim = apim
        self.backend_url = backend_url.rstrip("/")
        self.named_values = dict(named_values)
        # Refuses to start on a policy it does not implement (PolicyError).
        self.api = api or load_api(self.named_values)
        #: the products the API belongs to (the template adds it to every product the profiles name)
        self.products = [p.lower() for p in products] if products is not None else None
        self.jwt_cache = OpenIdConfigCache(ca_bundle)
        self.rate_limits = RateLimits()
        self.engine = PolicyEngine(self.jwt_cache, self.rate_limits)
        self._backend_ctx = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
        super().__init__(**kw)

    # -- control API -----------------------------------------------------------------------------------------------
    def error_body(self, err: HttpError):
        return {"statusCode": err.status, "message": err.message}

    def reset(self) -> None:
        self.rate_limits.clear()
        self.jwt_cache.clear()

    def get_config(self) -> dict:
        return {**super().get_config(), "backend_url": self.backend_url, "api_path": self.api.path,
                "openid_refresh_seconds": self.jwt_cache.refresh_seconds,
                "openid_min_refetch_seconds": self.jwt_cache.min_refetch_seconds,
                "openid_fetches": self.jwt_cache.fetches}

    def set_config(self, values: dict) -> None:
        super().set_config(values)
        for key, attr in (("openid_refresh_seconds", "refresh_seconds"),
                          ("openid_min_refetch_seconds", "min_refetch_seconds")):
            if key in values:
                setattr(self.jwt_cache, attr, float(values[key]))

    def dump_state(self) -> dict:
        return {}

    # -- data plane --------------------------------------------------------------------------------------------------
    def dispatch(self, req: Request, handler) -> Response | None:
        if req.path.startswith("/_control/"):
            return super().dispatch(req, handler)
        req.op = "gateway.request"
        fail = self.faults.failure(req.op)  # counts the call; an injected status answers in APIM's error shape
        if isinstance(fail, int):
            raise HttpError(fail, "InjectedFault", f"Injected fault on {req.op}")
        result = self.serve(req)
        return Response(result.status, result.body, result.headers)

    def serve(self, req: Request) -> GatewayResponse:
        rest = self.api.split(req.path)
        operation = self.api.operation(req.method, rest) if rest is not None else None
        if operation is None:
            return error_response(404, "Resource not found", "OperationNotFound")
        headers = {k: v for k, v in req.headers.items()}
        subscription = None
        if self.api.subscription_required:
            key = next((v for k, v in headers.items() if k.lower() == self.api.header_name.lower()), None)
            if key is None:
                values = req.query.get(self.api.query_name)
                key = values[-1] if values else None
            if not key:
                return error_response(401, MISSING_KEY, "SubscriptionKeyNotFound")
            subscription = self._subscription(key)
            if subscription is None:
                return error_response(401, INVALID_KEY, "SubscriptionKeyInvalid")
        ctx = RequestContext(req.method, req.path, req.query, headers, subscription)
        chain = [None, None, self.api.policy, operation.policy]  # global, product, API, operation
        try:
            self.engine.run_inbound(chain, ctx)
        except Stop as stop:
            return stop.response
        except RuntimeError:
            return error_response(500, "Internal server error", "ExpressionValueEvaluationFailure")
        response = self._forward(ctx, rest, req.body)
        response.headers.update(ctx.variables.get("_response_headers", {}))
        return response

    def _subscription(self, key: str) -> Subscription | None:
        found = self.apim.subscription_with_key(key)
        if found is None:
            return None
        props = found["properties"]
        if props.get("state") != "active" or not self._covers(props.get("scope") or ""):
            return None
        return Subscription(found["name"], props.get("displayName") or "", key)

    def _covers(self, scope: str) -> bool:
        service = self.apim.service_id.lower()
        scope = scope.lower()
        if scope in (f"{service}/apis", f"{service}/apis/{self.api.id.lower()}"):
            return True
        prefix = f"{service}/products/"
        if scope.startswith(prefix):
            product = scope[len(prefix):]
            return product in self.products if self.products is not None else True
        return False

    def _forward(self, ctx: RequestContext, rest: str, body: bytes) -> GatewayResponse:
        query = {k: v for k, v in ctx.query.items() if k != self.api.query_name}
        target = urllib.parse.urlsplit(self.backend_url)
        path = target.path.rstrip("/") + rest + (("?" + urllib.parse.urlencode(query, doseq=True)) if query else "")
        headers = {k: v for k, v in ctx.headers.items() if k.lower() not in HOP_BY_HOP}
        connection_cls = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        kwargs = {"context": self._backend_ctx} if target.scheme == "https" else {}
        conn = connection_cls(target.hostname, target.port, timeout=30, **kwargs)
        try:
            conn.request(ctx.method, path, body=body or None, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            out = {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP}
            return GatewayResponse(answer.status, payload, out)
        except OSError:
            return error_response(500, "Internal server error", "BackendConnectionFailure")
        finally:
            conn.close()
