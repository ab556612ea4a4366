"""Azure Key Vault (secrets data plane) stand-in.

The real ``azure-keyvault-secrets`` ``SecretClient`` runs unchanged against it:

    SecretClient(vault_url=standin.url, credential=DefaultAzureCredential(),
                 verify_challenge_resource=False,        # the host is not *.vault.azure.net
                 connection_verify=str(tls.ca_cert))     # the SDK refuses plain http, so we serve TLS

Wire contract, from Azure/azure-rest-api-specs
``specification/keyvault/data-plane/Microsoft.KeyVault/stable/2025-07-01/secrets.json`` and its examples, with
error bodies and headers taken from recorded service traffic (azure-sdk-for-js keyvault-secrets test recordings):

- Challenge auth: a request without a bearer token gets 401 ``AKV10000`` and
  ``WWW-Authenticate: Bearer authorization="https://login.windows.net/{tenant}", resource="https://vault.azure.net"``
  (the SDK's ChallengeAuthPolicy sends its first request bodiless and without a token to elicit it). Tokens come
  from ``tokens.TokenIssuer`` and must carry the audience ``https://vault.azure.net`` (401 ``AKV10022`` otherwise).
- ``api-version`` is required and must be one the service knows (400 ``BadParameter`` otherwise).
- Secrets: set (new 32-hex version each time), get (latest or a version), list (paged, no values), list versions,
  update properties (PATCH, empty version = latest), delete (always soft: since 2025 soft delete can't be off).
- Deleted secrets: get, list, recover, purge (403 with purge protection); deleted secrets disappear on their own
  at ``scheduledPurgeDate``.
- Soft delete finishes in the background, as in Key Vault ("Deletion may take several seconds", the SDK's
  ``begin_delete_secret``): for ``deletion_seconds`` (config, default 0) after a DELETE the name is *being deleted*:
  the deleted secret is not readable yet (404, so the SDK's poller keeps polling), and setting, recovering or purging
  it answers 409 ``ObjectIsBeingDeleted`` (the service's answers, Azure/azure-sdk-for-net#34322 and
  Azure/azure-cli#12722).
- Names: 1-127 of ``0-9a-zA-Z-``, case-insensitive, stored with the casing of the first set. Values up to
  25,600 bytes, contentType up to 255 characters, at most 15 tags.

Operation names (for fault injection, counters, chaos and benchmarks):
    secrets.set, secrets.get, secrets.list, secrets.list_versions, secrets.update, secrets.delete,
    deleted_secrets.get, deleted_secrets.list, deleted_secrets.recover, deleted_secrets.purge

Not implemented (the app doesn't use them): backup/restore, certificate-backed secrets (``kid``, ``managed``,
``outContentType``), throttling (inject 429s through the control API instead).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import secrets as _secrets
import time
from typing import Callable

from .http_standin import HttpError, HttpStandIn, Request, Response, bearer_token, route
from .tls import TlsFiles
from .tokens import TokenError, TokenIssuer

AUDIENCE = "https://vault.azure.net"
# Recorded 401s name login.windows.net as the authority; the SDK only reads the tenant id from its path.
AUTHORITY_HOST = "https://login.windows.net"
#: versions the service answers to: the SDK's ApiVersion enum (4.12: default 2026-04-01) plus the previews
#: its generated client lists (azure/keyvault/secrets/_generated/_operations/_operations.py)
API_VERSIONS = frozenset({
    "2015-06-01", "2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6-preview.2", "7.6",
    "2025-06-01-preview", "2025-07-01", "2026-01-01-preview", "2026-03-01-preview", "2026-04-01",
})
LATEST_API_VERSION = "2026-04-01"

# learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates#object-identifiers
NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_VALUE_BYTES = 25_600  # "Secret is beyond the maximum permitted length of 25600 characters." (service message)
MAX_CONTENT_TYPE = 255  # learn.microsoft.com/azure/key-vault/secrets/about-secrets
MAX_TAGS = 15
MAX_PAGE = 25  # secrets.json: maxresults minimum 1, maximum 25, default 25
DAY = 86_400


def _not_found(name: str, version: str | None = None) -> HttpError:
    ident = f"{name}/{version}" if version else name
    return HttpError(404, "SecretNotFound",
                     f"A secret with (name/id) {ident} was not found in this key vault. If you recently deleted this "
                     "secret you may be able to recover it using the correct recovery command. For help resolving "
                     "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")


def _deleted_not_found(name: str) -> HttpError:
    return HttpError(404, "SecretNotFound", f"Deleted Secret not found: {name}")


def _bad(message: str) -> HttpError:
    return HttpError(400, "BadParameter", message)


def _disabled() -> HttpError:
    return HttpError(403, "Forbidden", "Operation get is not allowed on a disabled secret.", inner="SecretDisabled")


def _unverified_claims(token: str) -> dict:
    try:
        body = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}


class KeyVaultStandIn(HttpStandIn):
    name = "keyvault"

    def __init__(self, issuer: TokenIssuer, *, tls: TlsFiles, tenant_id: str = "00000000-0000-4000-8000-0000000000aa",
                 purge_protection: bool = False, retention_days: int = 90, page_size: int = 25,
                 clock: Callable[[], float] = time.time, **kw):
        if tls is None:
            raise ValueError("azure-keyvault-secrets refuses plain http: give the stand-in TLS files")
        if not 7 <= int(retention_days) <= 90:
            raise ValueError("retention_days must be between 7 and 90 (softDeleteRetentionInDays)")
        if not 1 <= int(page_size) <= MAX_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE}")
        self.issuer, self.tenant_id, self.clock = issuer, tenant_id, clock
        self.purge_protection = bool(purge_protection)
        self.retention_days, self.page_size = int(retention_days), int(page_size)
        # lower-case name -> {"name": first casing, "versions": [version dicts, oldest first]}
        self._secrets: dict[str, dict] = {}
        # same shape plus deletedDate / scheduledPurgeDate
        self._deleted: dict[str, dict] = {}
        #: lower-case name -> clock time of its DELETE, while its soft delete is unfinished (``deletion_seconds``
        #: after it; a new setting applies to deletes under way, so a test can finish them at once)
        self._deleting: dict[str, float] = {}
        self.deletion_seconds = 0.0
        #: 401s sent, by reason (missing_token, invalid_audience, invalid_token); read-only in /_control/config
        self.auth_rejections: dict[str, int] = {}
        super().__init__(tls=tls, **kw)

    # -- framework hooks -------------------------------------------------------------------------------------------
    def error_body(self, err: HttpError):
        error = {"code": err.code, "message": err.message}
        if err.extra.get("inner"):
            error["innererror"] = {"code": err.extra["inner"]}
        return {"error": error}

    @property
    def challenge(self) -> str:
        return f'Bearer authorization="{AUTHORITY_HOST}/{self.tenant_id}", resource="{AUDIENCE}"'

    def _unauthorized(self, reason: str, message: str) -> HttpError:
        with self.lock:
            self.auth_rejections[reason] = self.auth_rejections.get(reason, 0) + 1
        # Every 401 carries the challenge: the SDK re-authenticates from it.
        return HttpError(401, "Unauthorized", message, headers={"WWW-Authenticate": self.challenge})

    def before(self, req: Request) -> dict[str, str]:
        token = bearer_token(req)
        if token is None:
            raise self._unauthorized("missing_token", "AKV10000: Request is missing a Bearer or PoP token.")
        try:
            self.issuer.verify(token, (AUDIENCE,))
        except TokenError as exc:
            if "audience" in str(exc):
                found = _unverified_claims(token).get("aud")
                raise self._unauthorized(
                    "invalid_audience", f"AKV10022: Invalid audience. Expected {AUDIENCE}, found: {found}.") from None
            # The service's wording for signature/expiry failures varies by cause; the code is what clients read.
            raise self._unauthorized("invalid_token", f"Error validating token: {exc}.") from None
        version = req.arg("api-version")
        if not version:
            raise _bad("The api-version query parameter is required.")
        if version not in API_VERSIONS:
            raise _bad(f"The specified version ({version}) is not recognized. "
                       f"Consider using the latest supported version ({LATEST_API_VERSION}).")
        return {"x-ms-keyvault-service-version": "1.9.0.0-local", "x-ms-keyvault-region": "local",
                "x-ms-request-id": _secrets.token_hex(16)}

    def dump_state(self) -> dict:
        return {"secrets": json.loads(json.dumps(self._secrets)), "deleted": json.loads(json.dumps(self._deleted))}

    def load_state(self, state: dict) -> None:
        self._secrets = json.loads(json.dumps(state.get("secrets", {})))
        self._deleted = json.loads(json.dumps(state.get("deleted", {})))

    def reset(self) -> None:
        self.load_state({})
        self._deleting = {}
        self.auth_rejections = {}  # cleared with the call counters by POST /_control/reset

    def get_config(self) -> dict:
        return {**super().get_config(), "tenant_id": self.tenant_id, "purge_protection": self.purge_protection,
                "retention_days": self.retention_days, "page_size": self.page_size,
                "deletion_seconds": self.deletion_seconds, "auth_rejections": dict(self.auth_rejections)}

    def set_config(self, values: dict) -> None:
        super().set_config(values)
        if "retention_days" in values:
            if not 7 <= int(values["retention_days"]) <= 90:
                raise HttpError(400, "BadParameter", "retention_days must be between 7 and 90")
            self.retention_days = int(values["retention_days"])
        if "page_size" in values:
            if not 1 <= int(values["page_size"]) <= MAX_PAGE:
                raise HttpError(400, "BadParameter", f"page_size must be between 1 and {MAX_PAGE}")
            self.page_size = int(values["page_size"])
        if "purge_protection" in values:
            self.purge_protection = bool(values["purge_protection"])
        if "deletion_seconds" in values:
            if not 0 <= float(values["deletion_seconds"]) <= 60:
                raise HttpError(400, "BadParameter", "deletion_seconds must be between 0 and 60")
            self.deletion_seconds = float(values["deletion_seconds"])
        if "tenant_id" in values:
            self.tenant_id = str(values["tenant_id"])

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self.clock())

    def _recovery_level(self) -> str:
        # secrets.json DeletionRecoveryLevel: "Customized" when retention is under 90 days; no "+Purgeable" once
        # purge protection is on.
        level = "Recoverable" if self.retention_days == 90 else "CustomizedRecoverable"
        return level if self.purge_protection else level + "+Purgeable"

    def _name(self, req: Request) -> str:
        name = req.params["name"]
        if not NAME_RE.match(name):
            raise _bad(f"The request URI contains an invalid name: {name}")
        return name

    def _expire_deleted(self) -> None:
        """The service purges a deleted secret by itself once its scheduledPurgeDate has passed."""
        now = self._now()
        for key in [k for k, d in self._deleted.items() if d["scheduledPurgeDate"] <= now]:
            del self._deleted[key]

    def _being_deleted(self, name: str) -> bool:
        key = name.lower()
        started = self._deleting.get(key)
        if started is None:
            return False
        if self.clock() < started + self.deletion_seconds:
            return True
        del self._deleting[key]
        return False

    @staticmethod
    def _being_deleted_conflict(message: str) -> HttpError:
        return HttpError(409, "Conflict", message, inner="ObjectIsBeingDeleted")

    def _live(self, name: str) -> dict:
        self._expire_deleted()
        secret = self._secrets.get(name.lower())
        if secret is None:
            raise _not_found(name)
        return secret

    @staticmethod
    def _version(secret: dict, name: str, version: str) -> dict:
        if not version:
            return secret["versions"][-1]
        for v in secret["versions"]:
            if v["version"] == version.lower():
                return v
        raise _not_found(name, version)

    def _attributes(self, v: dict) -> dict:
        attrs = {"enabled": v["enabled"]}
        for key in ("nbf", "exp"):
            if v.get(key) is not None:
                attrs[key] = v[key]
        attrs.update(created=v["created"], updated=v["updated"], recoveryLevel=self._recovery_level(),
                     recoverableDays=self.retention_days)
        return attrs

    def _bundle(self, secret: dict, v: dict, *, value: bool, versioned: bool = True) -> dict:
        """SecretBundle (value=True), or SecretItem / the bundle without its value."""
        ident = f"{self.url}/secrets/{secret['name']}"
        out = {"id": f"{ident}/{v['version']}" if versioned else ident, "attributes": self._attributes(v)}
        if value:
            out = {"value": v["value"], **out}
        # Unset optional fields are absent from the service's answers rather than null.
        if v.get("tags"):
            out["tags"] = dict(v["tags"])
        if v.get("contentType") is not None:
            out["contentType"] = v["contentType"]
        return out

    def _deleted_bundle(self, d: dict, *, versioned: bool = True) -> dict:
        out = {"recoveryId": f"{self.url}/deletedsecrets/{d['name']}", "deletedDate": d["deletedDate"],
               "scheduledPurgeDate": d["scheduledPurgeDate"]}
        out.update(self._bundle(d, d["versions"][-1], value=False, versioned=versioned))
        return out

    @staticmethod
    def _body(req: Request) -> dict:
        try:
            body = req.json()
        except HttpError:
            raise _bad("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _bad("The request body must be a JSON object.")
        return body

    @staticmethod
    def _check_properties(body: dict) -> dict:
        """contentType, tags and attributes as set and update accept them; returns the changes."""
        changes: dict = {}
        if body.get("contentType") is not None:
            ctype = body["contentType"]
            if not isinstance(ctype, str) or len(ctype) > MAX_CONTENT_TYPE:
                raise _bad(f"Property contentType has invalid value: at most {MAX_CONTENT_TYPE} characters.")
            changes["contentType"] = ctype
        if body.get("tags") is not None:
            tags = body["tags"]
            if not isinstance(tags, dict) or not all(isinstance(t, str) for t in tags.values()):
                raise _bad("Property tags has invalid value: tags are string key-value pairs.")
            if len(tags) > MAX_TAGS:
                raise _bad(f"Property tags has invalid value: at most {MAX_TAGS} tags are allowed.")
            changes["tags"] = dict(tags)
        attrs = body.get("attributes")
        if attrs is not None:
            if not isinstance(attrs, dict):
                raise _bad("Property attributes has invalid value.")
            if attrs.get("enabled") is not None:
                if not isinstance(attrs["enabled"], bool):
                    raise _bad("Property attributes.enabled has invalid value.")
                changes["enabled"] = attrs["enabled"]
            for key in ("nbf", "exp"):
                if attrs.get(key) is not None:
                    if isinstance(attrs[key], bool) or not isinstance(attrs[key], int):
                        raise _bad(f"Property attributes.{key} has invalid value.")
                    changes[key] = attrs[key]
        return changes

    def _page(self, req: Request, path: str, rows: list[tuple[str, dict]]) -> Response:
        """One page of (sort key, item) rows, continued through ``nextLink`` with an opaque ``$skiptoken``."""
        raw = req.arg("maxresults")
        if raw is None:
            size = self.page_size
        else:
            try:
                size = int(raw)
            except ValueError:
                size = 0
            if not 1 <= size <= MAX_PAGE:
                raise _bad(f"Invalid value for maxresults: {raw}. The value must be between 1 and {MAX_PAGE}.")
        start = 0
        token = req.arg("$skiptoken")
        if token:
            try:
                marker = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["NextMarker"]
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise _bad("The skiptoken is invalid.") from None
            # A marker rather than an offset: items created or deleted between pages don't shift the next page.
            start = next((i for i, (key, _) in enumerate(rows) if key > marker), len(rows))
        page = rows[start:start + size]
        body: dict = {"value": [item for _, item in page], "nextLink": None}
        if start + size < len(rows):
            token = base64.urlsafe_b64encode(json.dumps({"NextMarker": page[-1][0]}).encode()).decode().rstrip("=")
            # Same shape as the service's: https://{vault}:443/secrets?api-version=7.2&$skiptoken=...&maxresults=1
            body["nextLink"] = (f"{self.url}{path}?api-version={req.arg('api-version')}"
                                f"&$skiptoken={token}&maxresults={size}")
        return Response(200, body)

    # -- secrets ---------------------------------------------------------------------------------------------------
    @route("PUT", r"/secrets/(?P<name>[^/]+)", "secrets.set")
    def set_secret(self, req: Request) -> Response:
        name = self._name(req)
        body = self._body(req)
        value = body.get("value")
        if not isinstance(value, str):
            raise _bad("Property value is required and must be a string.")
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise _bad(f"Secret is beyond the maximum permitted length of {MAX_VALUE_BYTES} characters.")
        changes = self._check_properties(body)
        self._expire_deleted()
        key = name.lower()
        if self._being_deleted(key):
            raise self._being_deleted_conflict(
                f"Secret {name} is currently being deleted and cannot be re-created; retry later.")
        if key in self._deleted:
            raise HttpError(409, "Conflict",
                            f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be "
                            "reused; in this state, the secret can only be recovered or purged.",
                            inner="ObjectIsDeletedButRecoverable")
        now = self._now()
        version = {"version": _secrets.token_hex(16), "value": value, "enabled": True, "nbf": None, "exp": None,
                   "contentType": None, "tags": {}, "created": now, "updated": now}
        version.update(changes)
        secret = self._secrets.setdefault(key, {"name": name, "versions": []})
        secret["versions"].append(version)
        return Response(200, self._bundle(secret, version, value=True))

    @route("GET", r"/secrets/(?P<name>[^/]+)/?", "secrets.get")
    def get_latest(self, req: Request) -> Response:
        return self._get(req, "")

    @route("GET", r"/secrets/(?P<name>[^/]+)/(?P<version>(?!versions$)[^/]+)", "secrets.get")
    def get_version(self, req: Request) -> Response:
        return self._get(req, req.params["version"])

    def _get(self, req: Request, version: str) -> Response:
        name = self._name(req)
        secret = self._live(name)
        v = self._version(secret, name, version)
        # nbf/exp are not enforced on secrets ("get" works outside the window, about-secrets docs); disabled is.
        if not v["enabled"]:
            raise _disabled()
        return Response(200, self._bundle(secret, v, value=True))

    @route("GET", r"/secrets", "secrets.list")
    def list_secrets(self, req: Request) -> Response:
        self._expire_deleted()
        rows = [(key, self._bundle(s, s["versions"][-1], value=False, versioned=False))
                for key, s in sorted(self._secrets.items())]
        return self._page(req, "/secrets", rows)

    @route("GET", r"/secrets/(?P<name>[^/]+)/versions", "secrets.list_versions")
    def list_versions(self, req: Request) -> Response:
        name = self._name(req)
        secret = self._live(name)
        rows = [(f"{i:08d}", self._bundle(secret, v, value=False)) for i, v in enumerate(secret["versions"])]
        return self._page(req, f"/secrets/{secret['name']}/versions", rows)

    @route("PATCH", r"/secrets/(?P<name>[^/]+)/?", "secrets.update")
    def update_latest(self, req: Request) -> Response:
        return self._update(req, "")

    @route("PATCH", r"/secrets/(?P<name>[^/]+)/(?P<version>[^/]+)", "secrets.update")
    def update_version(self, req: Request) -> Response:
        return self._update(req, req.params["version"])

    def _update(self, req: Request, version: str) -> Response:
        name = self._name(req)
        changes = self._check_properties(self._body(req))
        secret = self._live(name)
        v = self._version(secret, name, version)
        v.update(changes)  # tags, when given, replace the old set as a whole
        v["updated"] = self._now()
        return Response(200, self._bundle(secret, v, value=False))

    @route("DELETE", r"/secrets/(?P<name>[^/]+)", "secrets.delete")
    def delete_secret(self, req: Request) -> Response:
        name = self._name(req)
        secret = self._live(name)
        key = name.lower()
        del self._secrets[key]
        now = self._now()
        # With deletion_seconds 0 the soft delete completes at once, so the SDK's delete poller (GET
        # /deletedsecrets/{name}, first poll without delay) finishes on its first poll; otherwise it polls until then.
        deleted = {**secret, "deletedDate": now, "scheduledPurgeDate": now + self.retention_days * DAY}
        self._deleted[key] = deleted
        if self.deletion_seconds > 0:
            self._deleting[key] = self.clock()
        return Response(200, self._deleted_bundle(deleted))

    # -- deleted secrets -------------------------------------------------------------------------------------------
    def _deleted_secret(self, name: str) -> dict:
        self._expire_deleted()
        d = self._deleted.get(name.lower())
        if d is None or self._being_deleted(name):
            raise _deleted_not_found(name)
        return d

    @route("GET", r"/deletedsecrets/(?P<name>[^/]+)", "deleted_secrets.get")
    def get_deleted(self, req: Request) -> Response:
        d = self._deleted_secret(self._name(req))
        # Recorded: GET /deletedsecrets of a disabled secret answers 403 SecretDisabled (the SDK's poller treats
        # a 403 as "deleted").
        if not d["versions"][-1]["enabled"]:
            raise _disabled()
        return Response(200, self._deleted_bundle(d))

    @route("GET", r"/deletedsecrets", "deleted_secrets.list")
    def list_deleted(self, req: Request) -> Response:
        self._expire_deleted()
        rows = [(key, self._deleted_bundle(d, versioned=False)) for key, d in sorted(self._deleted.items())
                if not self._being_deleted(key)]
        return self._page(req, "/deletedsecrets", rows)

    @route("POST", r"/deletedsecrets/(?P<name>[^/]+)/recover", "deleted_secrets.recover")
    def recover(self, req: Request) -> Response:
        name = self._name(req)
        if self._being_deleted(name):
            raise self._being_deleted_conflict(f"Secret {name} is currently being deleted.")
        d = self._deleted_secret(name)
        key = name.lower()
        del self._deleted[key]
        secret = {"name": d["name"], "versions": d["versions"]}
        self._secrets[key] = secret
        # Recovery is immediate too: the SDK's recover poller (GET /secrets/{name}) finishes on its first poll.
        return Response(200, self._bundle(secret, secret["versions"][-1], value=False))

    @route("DELETE", r"/deletedsecrets/(?P<name>[^/]+)", "deleted_secrets.purge")
    def purge(self, req: Request) -> Response:
        name = self._name(req)
        if self._being_deleted(name):
            raise self._being_deleted_conflict(f"Secret {name} is currently being deleted.")
        self._deleted_secret(name)
        if self.purge_protection:
            raise HttpError(403, "Forbidden",
                            'Operation "purge" is not allowed because purge protection is enabled for this vault. '
                            "Key Vault service will automatically purge it after the retention period has passed."
                            f"\r\nVault: {self.host}:{self.port};location=local")
        del self._deleted[name.lower()]
        return Response(204)
