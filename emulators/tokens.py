"""Access tokens for the Azure side of the local stack: HS256 JWTs that the Azure stand-ins can verify.

The managed-identity endpoint issues them; Key Vault and API Management's management plane check signature, expiry
and audience, as the real services do, so a client that asks for the wrong scope fails here as it would in Azure.
(Their issuer is not Entra ID's and the signature is symmetric: no client of this project validates an Azure token
itself. Auth0's tokens are RS256 with a published JWKS, as Auth0's are: ``auth0_signing.py``.)
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenError(Exception):
    pass


class TokenIssuer:
    def __init__(self, key: bytes | None = None):
        self.key = key or secrets.token_bytes(32)

    def issue(self, audience: str, subject: str, lifetime: int = 3600, **claims) -> tuple[str, int]:
        now = int(time.time())
        payload = {"aud": audience, "sub": subject, "iat": now, "nbf": now - 5, "exp": now + lifetime,
                   "iss": "https://local-stack/", **claims}
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        return f"{head}.{body}.{sig}", payload["exp"]

    def verify(self, token: str, audiences: tuple[str, ...]) -> dict:
        try:
            head, body, sig = token.split(".")
        except ValueError:
            raise TokenError("malformed token") from None
        expected = _b64(hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, sig):
            raise TokenError("invalid signature")
        try:
            claims = json.loads(_unb64(body))
        except ValueError:
            raise TokenError("malformed token") from None
        if claims.get("exp", 0) < time.time():
            raise TokenError("token expired")
        if claims.get("aud") not in audiences:
            raise TokenError(f"invalid audience {claims.get('aud')!r}")
        return claims
