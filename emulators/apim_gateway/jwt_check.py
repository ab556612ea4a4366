"""``validate-jwt`` as the policy reference describes it, with PyJWT doing the cryptography.

Behaviour (Microsoft's validate-jwt reference and the predefined errors of "Error handling in API Management"):

- the token comes from the header (with ``require-scheme``, the Authorization header must carry that scheme) or the
  query parameter; none: *JWT not present.* (``TokenNotPresent``);
- the signing keys come from the ``openid-config`` URL's ``jwks_uri``; the configuration is cached for an hour and,
  when a token names a ``kid`` the cache lacks, fetched again at most once per 5 minutes (both intervals settable
  for tests); a kid still unknown: ``TokenSignatureKeyNotFound``; a bad signature ``TokenSignatureInvalid``;
  accepted algorithms RS256, RS512, PS256 (an unsigned token is refused while ``require-signed-tokens`` holds);
- ``exp`` is required unless ``require-expiration-time="false"`` (``TokenClaimNotFound``), an expired token is
  ``TokenExpired``, with ``clock-skew`` seconds of tolerance (default 0);
- ``audiences`` (any one) ``TokenAudienceNotAllowed``; ``issuers`` (any one; else the configuration's issuer)
  ``TokenIssuerNotAllowed``;
- ``required-claims``: a missing claim ``TokenClaimNotFound`` (*JWT is missing the following claims: ...*), a value
  not matching (``match`` all/any, ``separator`` splits a multi-valued claim) ``TokenClaimValueNotAllowed``.

Every failure answers ``failed-validation-httpcode`` (default 401) with ``failed-validation-error-message`` when set,
else the predefined message. Messages "from the JWT library" are the gateway's own wording: Microsoft's
IdentityModel texts are not reproduced.
"""
from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass

import jwt

ALGORITHMS = ["RS256", "RS512", "PS256"]


class JwtRejected(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class ValidatedJwt:
    """What ``output-token-variable-name`` holds: the policy expressions' ``Jwt`` (claims as string arrays)."""
    claims: dict[str, list[str]]
    raw: dict

    @classmethod
    def from_claims(cls, payload: dict) -> "ValidatedJwt":
        claims = {}
        for name, value in payload.items():
            values = value if isinstance(value, list) else [value]
            claims[name] = [v if isinstance(v, str) else json.dumps(v) for v in values]
        return cls(claims, payload)


class OpenIdConfigCache:
    """The documented caching of an ``openid-config`` URL's metadata and keys."""

    def __init__(self, ca_bundle: str | None = None, refresh_seconds: float = 3600.0,
                 min_refetch_seconds: float = 300.0):
        self.refresh_seconds, self.min_refetch_seconds = refresh_seconds, min_refetch_seconds
        self._ctx = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self.fetches = 0

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _get(self, url: str) -> dict:
        with urllib.request.urlopen(url, timeout=10, context=self._ctx) as resp:
            return json.loads(resp.read())

    def _fetch(self, url: str) -> dict:
        self.fetches += 1
        config = self._get(url)
        jwks = self._get(config["jwks_uri"])
        keys = {k["kid"]: jwt.PyJWK(k) for k in jwks.get("keys", []) if k.get("kid") and k.get("kty") == "RSA"}
        return {"issuer": config.get("issuer"), "keys": keys, "at": time.monotonic()}

    def lookup(self, url: str, kid: str | None) -> tuple[str | None, jwt.PyJWK | None]:
        with self._lock:
            entry = self._entries.get(url)
            now = time.monotonic()
            try:
                if entry is None or now - entry["at"] >= self.refresh_seconds:
                    entry = self._entries[url] = self._fetch(url)
                elif kid not in entry["keys"] and now - entry["at"] >= self.min_refetch_seconds:
                    entry = self._entries[url] = self._fetch(url)
            except (OSError, ValueError, KeyError):
                if entry is None:
                    return None, None  # no configuration: no key resolves
            return entry["issuer"], entry["keys"].get(kid or "")


def _token_from(node, headers, query) -> str | None:
    a = node.attrs
    if "header-name" in a:
        raw = headers.get(a["header-name"])
        if not raw:
            return None
        scheme = a.get("require-scheme")
        if scheme and a["header-name"].lower() == "authorization":
            given, _, token = raw.partition(" ")
            return token.strip() or None if given.lower() == scheme.lower() else None
        return raw.strip() or None
    values = query.get(a["query-parameter-name"])
    return values[-1] if values else None


def _flag(node, name: str, default: bool) -> bool:
    return str(node.attrs.get(name, str(default))).lower() == "true"


def validate(node, headers, query, cache: OpenIdConfigCache) -> ValidatedJwt:
    """Raises JwtRejected(reason, predefined message) when the token fails a check."""
    token = _token_from(node, headers, query)
    if not token:
        raise JwtRejected("TokenNotPresent", "JWT not present.")
    try:
        header = jwt.get_unverified_header(token)
        jwt.decode(token, options={"verify_signature": False})  # well-formed claims, before any key is looked up
    except jwt.PyJWTError:
        raise JwtRejected("JwtInvalid", "The token is not a well-formed JWT.") from None
    alg = header.get("alg")
    if alg == "none" or alg is None:
        if _flag(node, "require-signed-tokens", True):
            raise JwtRejected("TokenSignatureInvalid", "The token is not signed. Access denied.")
    elif alg not in ALGORITHMS:
        raise JwtRejected("TokenSignatureInvalid", f"Algorithm {alg} is not supported. Access denied.")
    config_issuer, key = cache.lookup(node.child("openid-config").attrs["url"], header.get("kid"))
    if key is None:
        raise JwtRejected("TokenSignatureKeyNotFound",
                          f"Signature validation failed: no key with kid '{header.get('kid')}'. Access denied.")
    skew = int(str(node.attrs.get("clock-skew", "0")) or 0)
    try:
        payload = jwt.decode(token, key.key, algorithms=[alg], leeway=skew,
                             options={"verify_aud": False, "verify_iss": False, "verify_exp": False,
                                      "verify_nbf": False, "verify_iat": False})
    except jwt.PyJWTError:
        raise JwtRejected("TokenSignatureInvalid", "Signature validation failed. Access denied.") from None
    now = time.time()
    if "exp" not in payload:
        if _flag(node, "require-expiration-time", True):
            raise JwtRejected("TokenClaimNotFound", "JWT is missing the following claims: exp. Access denied.")
    elif not isinstance(payload["exp"], (int, float)) or payload["exp"] + skew < now:
        raise JwtRejected("TokenExpired", "Lifetime validation failed: the token is expired. Access denied.")
    if isinstance(payload.get("nbf"), (int, float)) and payload["nbf"] - skew > now:
        raise JwtRejected("JwtInvalid", "Lifetime validation failed: the token is not valid yet.")
    audiences = [a.text for a in (node.child("audiences").all("audience") if node.child("audiences") else [])]
    if audiences:
        given = payload.get("aud")
        given = given if isinstance(given, list) else [given]
        if not any(a in given for a in audiences):
            raise JwtRejected("TokenAudienceNotAllowed", "Audience validation failed. Access denied.")
    issuers = [i.text for i in (node.child("issuers").all("issuer") if node.child("issuers") else [])]
    issuers = issuers or ([config_issuer] if config_issuer else [])
    if issuers and payload.get("iss") not in issuers:
        raise JwtRejected("TokenIssuerNotAllowed", "Issuer validation failed. Access denied.")
    _required_claims(node, payload)
    return ValidatedJwt.from_claims(payload)


def _required_claims(node, payload: dict) -> None:
    required = node.child("required-claims")
    if required is None:
        return
    claims = required.all("claim")
    missing = [c.attrs["name"] for c in claims if c.attrs["name"] not in payload]
    if missing:
        raise JwtRejected("TokenClaimNotFound",
                          f"JWT is missing the following claims: {', '.join(missing)}. Access denied.")
    for claim in claims:
        name, value = claim.attrs["name"], payload[claim.attrs["name"]]
        values = value if isinstance(value, list) else [str(value)]
        separator = claim.attrs.get("separator")
        if separator:
            values = [part for v in values for part in str(v).split(separator) if part]
        wanted = [v.text for v in claim.all("value")]
        if not wanted:
            continue
        ok = all(w in values for w in wanted) if claim.attrs.get("match", "all") == "all" else \
            any(w in values for w in wanted)
        if not ok:
            raise JwtRejected("TokenClaimValueNotAllowed",
                              f"Claim {name} value of {value} is not allowed. Access denied.")
