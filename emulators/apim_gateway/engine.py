"""Running policy documents for one request: scopes, ``<base />``, and the policies ``policy.py`` accepts.

Scopes run from the most specific down: the operation's inbound section runs its elements in order, and its
``<base />`` runs the API's, whose ``<base />`` runs the product's, then the global one (Microsoft, "Policies in
Azure API Management", *Scopes*). A scope without a document behaves as a lone ``<base />``. A policy that ends the
request (``return-response``, a failed ``validate-jwt`` or ``check-header``, an exceeded ``rate-limit-by-key``)
raises :class:`Stop` with the response; nothing after it runs and the backend is not called.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .jwt_check import JwtRejected, OpenIdConfigCache, validate
from .policy import Node, PolicyDocument


@dataclass
class Subscription:
    id: str
    name: str
    key: str


@dataclass
class GatewayResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = ""  # context.LastError.Reason when a policy or built-in step refused


def error_response(status: int, message: str, reason: str = "", headers: dict | None = None) -> GatewayResponse:
    """API Management's error body for its built-in steps and access restriction policies."""
    body = json.dumps({"statusCode": status, "message": message}).encode()
    return GatewayResponse(status, body, {"Content-Type": "application/json", **(headers or {})}, reason)


class Stop(Exception):
    def __init__(self, response: GatewayResponse):
        super().__init__(response.status)
        self.response = response


@dataclass
class RequestContext:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]              # case-insensitive lookups through get_header
    subscription: Subscription | None
    variables: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def set_header(self, name: str, value: str | None) -> None:
        for k in [k for k in self.headers if k.lower() == name.lower()]:
            del self.headers[k]
        if value is not None:
            self.headers[name] = value


class _Headers:
    """Case-insensitive view for validate-jwt."""

    def __init__(self, ctx: RequestContext):
        self.ctx = ctx

    def get(self, name: str):
        return self.ctx.header(name)


class RateLimits:
    """rate-limit-by-key counters: a sliding window of ``renewal-period`` seconds per key, shared by every scope
    that names the same key (the reference: "a single counter is used for all scopes")."""

    def __init__(self):
        self._lock = threading.Lock()
        self._calls: dict[str, deque] = {}

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def take(self, key: str, calls: int, period: int) -> tuple[bool, int, int]:
        """(allowed, remaining, retry_after seconds)."""
        now = time.monotonic()
        with self._lock:
            window = self._calls.setdefault(key, deque())
            while window and now - window[0] >= period:
                window.popleft()
            if len(window) >= calls:
                retry = max(1, math.ceil(period - (now - window[0])))
                return False, 0, retry
            window.append(now)
            return True, calls - len(window), 0


class PolicyEngine:
    def __init__(self, jwt_cache: OpenIdConfigCache, rate_limits: RateLimits):
        self.jwt_cache, self.rate_limits = jwt_cache, rate_limits

    def run_inbound(self, chain: list[PolicyDocument | None], ctx: RequestContext) -> None:
        """``chain``: global, product, API, operation (None where a scope has no document)."""
        self._section(chain, len(chain) - 1, "inbound", ctx)

    def _section(self, chain, index: int, section: str, ctx: RequestContext) -> None:
        if index < 0:
            return
        doc = chain[index]
        elements = doc.sections.get(section) if doc is not None else None
        if elements is None:
            self._section(chain, index - 1, section, ctx)  # no document, or no such section: as <base />
            return
        for node in elements:
            self._run(node, chain, index, section, ctx)

    def _run(self, node: Node, chain, index: int, section: str, ctx: RequestContext) -> None:
        handler = getattr(self, "_p_" + node.tag.replace("-", "_"), None)
        if node.tag == "base":
            self._section(chain, index - 1, section, ctx)
        elif node.tag == "choose":
            for branch in node.children:
                if branch.tag == "otherwise" or bool(_eval(branch.attrs["condition"], ctx)):
                    for child in branch.children:
                        self._run(child, chain, index, section, ctx)
                    break
        elif handler is not None:
            handler(node, ctx)
        # forward-request is the server's to carry out; it is accepted in the backend section only.

    # -- policies ------------------------------------------------------------------------------------------------
    def _p_validate_jwt(self, node: Node, ctx: RequestContext) -> None:
        try:
            token = validate(node, _Headers(ctx), ctx.query, self.jwt_cache)
        except JwtRejected as exc:
            status = int(node.attrs.get("failed-validation-httpcode", "401"))
            message = node.attrs.get("failed-validation-error-message") or str(exc)
            raise Stop(error_response(status, message, exc.reason)) from None
        name = node.attrs.get("output-token-variable-name")
        if name:
            ctx.variables[name] = token

    def _p_check_header(self, node: Node, ctx: RequestContext) -> None:
        name = node.attrs["name"]
        value = ctx.header(name)
        status = int(node.attrs["failed-check-httpcode"])
        message = node.attrs["failed-check-error-message"]
        if value is None:
            raise Stop(error_response(status, message, "HeaderNotFound"))
        allowed = [v.text for v in node.all("value")]
        ignore_case = str(node.attrs["ignore-case"]).lower() == "true"
        same = (lambda a, b: a.lower() == b.lower()) if ignore_case else (lambda a, b: a == b)
        if allowed and not any(same(value, v) for v in allowed):
            raise Stop(error_response(status, message, "HeaderValueNotAllowed"))

    def _p_rate_limit_by_key(self, node: Node, ctx: RequestContext) -> None:
        calls = int(_eval(node.attrs["calls"], ctx))
        period = int(_eval(node.attrs["renewal-period"], ctx))
        key = str(_eval(node.attrs["counter-key"], ctx))
        allowed, remaining, retry = self.rate_limits.take(key, calls, period)
        headers = {}
        if "remaining-calls-header-name" in node.attrs:
            headers[node.attrs["remaining-calls-header-name"]] = str(remaining)
        if "total-calls-header-name" in node.attrs:
            headers[node.attrs["total-calls-header-name"]] = str(calls)
        ctx.variables.setdefault("_response_headers", {}).update(headers)
        if not allowed:
            headers[node.attrs.get("retry-after-header-name", "Retry-After")] = str(retry)
            raise Stop(error_response(429, f"Rate limit is exceeded. Try again in {retry} seconds.",
                                      "RateLimitExceeded", headers))

    def _p_set_header(self, node: Node, ctx: RequestContext) -> None:
        name, action = node.attrs["name"], node.attrs.get("exists-action", "override")
        if action == "delete":
            ctx.set_header(name, None)
            return
        value = ",".join(str(_eval(v.text, ctx)) for v in node.all("value"))
        current = ctx.header(name)
        if action == "skip" and current is not None:
            return
        if action == "append" and current is not None:
            value = f"{current},{value}"
        ctx.set_header(name, value)

    def _p_return_response(self, node: Node, ctx: RequestContext) -> None:
        status = node.child("set-status")
        code = int(status.attrs["code"]) if status else 200
        headers = {}
        for h in node.all("set-header"):
            if h.attrs.get("exists-action", "override") != "delete":
                headers[h.attrs["name"]] = ",".join(str(_eval(v.text, ctx)) for v in h.all("value"))
        body = node.child("set-body")
        raise Stop(GatewayResponse(code, (body.text if body else "").encode(), headers,
                                   status.attrs.get("reason", "") if status else ""))


def _eval(value: Any, ctx: RequestContext) -> Any:
    return value(ctx) if callable(value) else value
