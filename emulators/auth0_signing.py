"""The Auth0 tenant's application signing keys: RS256 access tokens, the JWKS, rotation and revocation.

Auth0 signs with one key at a time and publishes more than one: "The OIDC discovery document will always include
both the current key and the next key, and it may also include the previous key if the previous key has not yet
been revoked" (Auth0 docs, *Rotate Signing Keys*). A rotation makes the next key current, the current one previous,
and generates a new next key; "all tokens signed with the previous key will still be valid until you revoke the
previous key" (*Revoke Signing Keys*). A revoked key leaves the JWKS, so a resource server that refreshes its copy
stops accepting the tokens it signed. Management API: ``GET /api/v2/keys/signing``, ``GET /api/v2/keys/signing/{kid}``,
``POST /api/v2/keys/signing/rotate`` (answers the new next key's ``cert`` and ``kid``),
``PUT /api/v2/keys/signing/{kid}/revoke``.

Tokens are signed and checked with PyJWT (``cryptography`` backend), so the stand-in's tokens are as standard as
the libraries that read them.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import string
import threading
import time

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_ALNUM = string.ascii_letters + string.digits


def _b64url_uint(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class TokenRejected(Exception):
    """A token the tenant did not sign, or signed with a revoked key, or expired, or for another audience."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason  # "malformed" | "signature" | "expired" | "audience"


class SigningKey:
    def __init__(self, private_pem: bytes, kid: str, cert_pem: str):
        self.private_pem, self.kid, self.cert_pem = private_pem, kid, cert_pem
        self.private = serialization.load_pem_private_key(private_pem, password=None)
        self.public = self.private.public_key()
        self.current_since: str | None = None
        self.current_until: str | None = None
        self.revoked_at: str | None = None

    @classmethod
    def generate(cls, tenant: str) -> "SigningKey":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # Auth0's key ids are 21-22 url-safe characters (e.g. "21hi274Rp02112mgkUGma" in the Management API docs).
        kid = "".join(secrets.choice(_ALNUM) for _ in range(21))
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, tenant)])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=3650)).sign(private, hashes.SHA256()))
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cls(pem, kid, cert.public_bytes(serialization.Encoding.PEM).decode())

    @property
    def cert_der(self) -> bytes:
        return x509.load_pem_x509_certificate(self.cert_pem.encode()).public_bytes(serialization.Encoding.DER)

    def jwk(self) -> dict:
        numbers = self.public.public_numbers()
        der = self.cert_der
        # The members Auth0's /.well-known/jwks.json carries per key.
        return {"kty": "RSA", "use": "sig", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e),
                "kid": self.kid, "x5t": base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode(),
                "x5c": [base64.b64encode(der).decode()], "alg": "RS256"}

    def dump(self) -> dict:
        return {"private_pem": self.private_pem.decode(), "kid": self.kid, "cert": self.cert_pem,
                "current_since": self.current_since, "current_until": self.current_until,
                "revoked_at": self.revoked_at}

    @classmethod
    def load(cls, data: dict) -> "SigningKey":
        key = cls(data["private_pem"].encode(), data["kid"], data["cert"])
        key.current_since, key.current_until = data.get("current_since"), data.get("current_until")
        key.revoked_at = data.get("revoked_at")
        return key


class SigningKeys:
    """The tenant's keys: ``previous`` (until revoked), ``current`` (signs), ``next`` (published ahead)."""

    def __init__(self, tenant: str = "local-stack"):
        self.tenant = tenant
        self._lock = threading.Lock()
        self.current = SigningKey.generate(tenant)
        self.current.current_since = _now_iso()
        self.next = SigningKey.generate(tenant)
        self.previous: SigningKey | None = None
        self.revoked: list[SigningKey] = []

    # -- what is published ---------------------------------------------------------------------------------------
    def valid(self) -> list[SigningKey]:
        return [k for k in (self.current, self.next, self.previous) if k is not None]

    def jwks(self) -> dict:
        return {"keys": [k.jwk() for k in self.valid()]}

    def describe(self, key: SigningKey) -> dict:
        """A key as ``GET /api/v2/keys/signing`` shows it (SigningKeys in auth0-python 6.8)."""
        der = key.cert_der
        out = {"kid": key.kid, "cert": key.cert_pem, "pkcs7": key.cert_pem,
               "fingerprint": ":".join(f"{b:02X}" for b in hashlib.sha1(der).digest()),
               "thumbprint": hashlib.sha1(der).hexdigest(),
               "current": key is self.current, "next": key is self.next, "previous": key is self.previous,
               "revoked": key.revoked_at is not None}
        for name in ("current_since", "current_until", "revoked_at"):
            if getattr(key, name):
                out[name] = getattr(key, name)
        return out

    def all_keys(self) -> list[SigningKey]:
        # The dashboard lists the last three revoked keys.
        return self.valid() + self.revoked[-3:]

    def find(self, kid: str) -> SigningKey | None:
        return next((k for k in self.all_keys() if k.kid == kid), None)

    # -- changes -------------------------------------------------------------------------------------------------
    def rotate(self) -> SigningKey:
        """The next key becomes current; returns the new next key."""
        with self._lock:
            now = _now_iso()
            self.current.current_until = now
            if self.previous is not None:
                # Only one previous key is kept valid; an older one is retired as if revoked.
                self.previous.revoked_at = now
                self.revoked.append(self.previous)
            self.previous, self.current = self.current, self.next
            self.current.current_since = now
            self.next = SigningKey.generate(self.tenant)
            return self.next

    def revoke(self, kid: str) -> SigningKey:
        """Revokes the previous key (only a previously used key can be revoked). Raises KeyError or ValueError."""
        with self._lock:
            key = self.find(kid)
            if key is None:
                raise KeyError(kid)
            if key is not self.previous:
                raise ValueError("only a previously used signing key can be revoked; rotate first")
            key.revoked_at = _now_iso()
            self.revoked.append(key)
            self.previous = None
            return key

    # -- tokens --------------------------------------------------------------------------------------------------
    def sign(self, claims: dict) -> str:
        key = self.current
        return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"})

    def verify(self, token: str, audience: str, issuer: str) -> dict:
        """Claims of a token this tenant signed with a key still valid; TokenRejected otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed", "Invalid token") from None
        key = next((k for k in self.valid() if k.kid == header.get("kid")), None)
        if key is None or header.get("alg") != "RS256":
            raise TokenRejected("signature", "Invalid token")
        try:
            return jwt.decode(token, key.public, algorithms=["RS256"], audience=audience, issuer=issuer,
                              options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise TokenRejected("expired", "Expired token received for JSON Web Token validation") from None
        except jwt.InvalidAudienceError:
            aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
            raise TokenRejected("audience", f"Bad audience: {aud}") from None
        except jwt.PyJWTError:
            raise TokenRejected("signature", "Invalid token") from None

    # -- state ---------------------------------------------------------------------------------------------------
    def dump(self) -> dict:
        return {"current": self.current.dump(), "next": self.next.dump(),
                "previous": self.previous.dump() if self.previous else None,
                "revoked": [k.dump() for k in self.revoked[-3:]]}

    def load(self, data: dict | None) -> None:
        if not data:
            return
        with self._lock:
            self.current = SigningKey.load(data["current"])
            self.next = SigningKey.load(data["next"])
            self.previous = SigningKey.load(data["previous"]) if data.get("previous") else None
            self.revoked = [SigningKey.load(k) for k in data.get("revoked", [])]


def client_credentials_claims(*, issuer: str, client_id: str, audience: str, scope: list[str], lifetime: int,
                              now: float | None = None) -> dict:
    """The claims of an access token for the client credentials grant, as Auth0 issues them (Auth0 docs, *Access
    Token Profiles*, and the tokens its tenants hand out): the issuer with its trailing slash, ``sub`` =
    ``{client_id}@clients``, ``azp`` = the client id, ``scope`` space-separated, ``gty`` = ``client-credentials``."""
    issued = int(time.time() if now is None else now)
    return {"iss": issuer, "sub": f"{client_id}@clients", "aud": audience, "iat": issued, "exp": issued + lifetime,
            "scope": " ".join(scope), "gty": "client-credentials", "azp": client_id}
