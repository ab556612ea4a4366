"""A managed-identity endpoint, as App Service and Azure Functions expose it.

``DefaultAzureCredential`` finds ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER`` in the environment and asks
``GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=<scope without /.default>`` with the header
``X-IDENTITY-HEADER``. This stand-in answers the same way, so the app's credential code runs its real path locally,
and the tokens it issues carry the requested resource as audience for the other stand-ins to check.
Source: https://learn.microsoft.com/azure/app-service/overview-managed-identity#rest-endpoint-reference
"""
from __future__ import annotations

import secrets

from .http_standin import HttpError, HttpStandIn, Request, Response, route
from .tokens import TokenIssuer

#: the system-assigned identity's ids; a user-assigned one is chosen with client_id
SYSTEM_CLIENT_ID = "00000000-0000-4000-8000-00000000a11d"


class IdentityStandIn(HttpStandIn):
    name = "identity"

    def __init__(self, issuer: TokenIssuer, header_secret: str | None = None, **kw):
        self.issuer = issuer
        self.header_secret = header_secret or secrets.token_urlsafe(24)
        self.issued: dict[str, int] = {}
        super().__init__(**kw)

    def error_body(self, err: HttpError):
        return {"statusCode": err.status, "message": err.message, "correlationId": secrets.token_hex(8)}

    @route("GET", r"/msi/token", "identity.get_token")
    def get_token(self, req: Request) -> Response:
        if req.headers.get("X-IDENTITY-HEADER") != self.header_secret:
            raise HttpError(401, "Unauthorized", "X-IDENTITY-HEADER is missing or wrong")
        if req.arg("api-version") != "2019-08-01":
            raise HttpError(400, "BadRequest", "api-version must be 2019-08-01")
        resource = req.arg("resource")
        if not resource:
            raise HttpError(400, "BadRequest", "resource is required")
        client_id = req.arg("client_id") or SYSTEM_CLIENT_ID
        token, exp = self.issuer.issue(resource, subject=client_id, appid=client_id, lifetime=3600)
        self.issued[resource] = self.issued.get(resource, 0) + 1
        return Response(200, {"access_token": token, "expires_on": str(exp), "resource": resource,
                              "token_type": "Bearer", "client_id": client_id})

    @property
    def endpoint(self) -> str:
        return f"{self.url}/msi/token"
