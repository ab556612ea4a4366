"""A small sample backend behind the local gateway: it answers every call with what it learnt about the caller.

The Customer API's policy passes the caller's identity on as headers (``X-Customer-Subscription``,
``X-Customer-Client-Id``, ``X-Customer-Scopes``, ``X-Customer-Organization``: the token's ``org_id``, empty when it has
none). The backend echoes those (``organization`` only when there is one), the method, the path and the query, and
whether a subscription key or a bearer token reached it (never their values), so a test or ``devtools call`` sees
what an API behind API Management would see.
"""
from __future__ import annotations

import json

from ..http_standin import HttpStandIn, Request, Response


class SampleBackend(HttpStandIn):
    name = "backend"

    def dispatch(self, req: Request, handler) -> Response | None:
        if req.path.startswith("/_control/"):
            return super().dispatch(req, handler)
        req.op = "backend.request"
        self.faults.failure(req.op)  # counts the call

        def header(name: str) -> str | None:
            return req.headers.get(name)

        caller = {"subscription": header("X-Customer-Subscription"), "client_id": header("X-Customer-Client-Id"),
                  "scopes": (header("X-Customer-Scopes") or "").split()}
        if header("X-Customer-Organization"):  # the gateway sends it empty for a customer without an organization
            caller["organization"] = header("X-Customer-Organization")
        try:
            body = json.loads(req.body) if req.body else None
        except ValueError:
            body = {"bytes": len(req.body)}
        return Response(200, {"method": req.method, "path": req.path, "query": req.query, "caller": caller,
                              "received": {"subscription_key": header("Ocp-Apim-Subscription-Key") is not None,
                                           "bearer_token": (header("Authorization") or "").startswith("Bearer ")},
                              "body": body})
