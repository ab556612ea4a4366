"""The Auth0 stand-in's token endpoint: ``POST /oauth/token`` for the client credentials grant, organizations
included.

A mixin of :class:`emulators.auth0.Auth0StandIn`; it expects ``self.clients``, ``self.grants``,
``self.organizations``, ``self.org_grants``, ``self.tenant_settings``, ``self.signing`` and the token lifetime.

Tokens: RS256, ``iss`` = ``https://{domain}/``, ``sub`` = ``{client_id}@clients``, ``azp``, ``aud``, ``iat``,
``exp``, ``scope``, ``gty`` (``auth0_signing.client_credentials_claims``).

Organizations (Auth0, *Machine-to-Machine Access for Organizations* and *Configure Your Application for M2M
Access*): the request may name one with ``organization`` (its id, or its name when the tenant setting
``allow_organization_name_in_authentication_api`` is on, as for ``/authorize``); the grant for the audience says
how the client may use organizations (``organization_usage``: deny, the default, allow, require) and which:
those the grant is associated with, or any when ``allow_any_organization``. A client's ``default_organization``
(flows ``client_credentials``) applies "when none is specified and organization support is required". The token
then carries ``org_id``, and ``org_name`` when the tenant setting is on ("Access and ID tokens automatically include
both org_name and org_id claims", *Use Organization Names in Authentication API*).

Auth0 does not publish the errors of an organization request. The stand-in answers in the OAuth shape the token
endpoint uses: 400 ``invalid_request`` for an organization the grant requires and the request lacks (Auth0's text
for the same case at login: "parameter organization is required for this client") or forbids, and 403
``access_denied`` for an organization the client may not use, whether or not it exists (no probing for names).
"""
from __future__ import annotations

import base64
import binascii
import json
import secrets
import urllib.parse

from .auth0_signing import client_credentials_claims
from .http_standin import HttpError, Request, Response, route


class TokenRoutes:
    @route("POST", r"/oauth/token", "oauth.token")
    def token(self, req: Request) -> Response:
        body = self._token_form(req)
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
        organization = self._token_organization(client, grant, body.get("organization"))
        granted = list(grant["scope"])
        requested = str(body.get("scope") or "").split()
        scope = [s for s in granted if s in requested] if requested else granted
        lifetime = self.token_lifetime
        api = self.resource_server_for(audience)
        if api is not None and not api.get("_lifetime_from_config"):
            lifetime = int(api.get("token_lifetime") or lifetime)  # an API's access tokens live as long as it says
        claims = client_credentials_claims(issuer=self.issuer_url, client_id=client_id, audience=audience,
                                           scope=scope, lifetime=lifetime)
        if organization is not None:
            claims["org_id"] = organization["id"]
            if self.org_names_in_tokens:
                claims["org_name"] = organization["name"]
        token = self.signing.sign(claims)
        return Response(200, {"access_token": token, "expires_in": lifetime, "scope": " ".join(scope),
                              "token_type": "Bearer"})

    @staticmethod
    def _token_form(req: Request) -> dict:
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                body = json.loads(req.body or b"{}")
            except ValueError:
                raise HttpError(400, "invalid_request", "Invalid JSON body") from None
            return body if isinstance(body, dict) else {}
        return {k: v[-1] for k, v in urllib.parse.parse_qs(req.body.decode("utf-8", "replace")).items()}

    @property
    def org_names_in_tokens(self) -> bool:
        return bool(self.tenant_settings.get("allow_organization_name_in_authentication_api"))

    def _token_organization(self, client: dict, grant: dict, requested) -> dict | None:
        """The organization the token is for, or None; raises the token endpoint's refusal."""
        usage = grant.get("organization_usage") or "deny"
        if requested in (None, ""):
            default = client.get("default_organization") or {}
            if usage == "require" and "client_credentials" in (default.get("flows") or []):
                requested = default.get("organization_id")
            elif usage == "require":
                raise HttpError(400, "invalid_request", "parameter organization is required for this client")
            else:
                return None
        if not isinstance(requested, str):
            raise HttpError(400, "invalid_request", "parameter organization must be a string")
        if usage == "deny":
            raise HttpError(400, "invalid_request",
                            "parameter organization is not allowed: this client may not use organizations with the "
                            "requested API")
        organization = self.organizations.get(requested)
        if organization is None and self.org_names_in_tokens:
            organization = next((o for o in self.organizations.values() if o["name"] == requested), None)
        allowed = organization is not None and (
            (grant.get("allow_any_organization") and client.get("is_first_party", True))
            or any(a["organization_id"] == organization["id"] and a["grant_id"] == grant["id"]
                   for a in self.org_grants))
        if not allowed:
            raise HttpError(403, "access_denied",
                            "The client is not authorized to access the requested organization for this API")
        return organization
