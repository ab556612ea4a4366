"""In-memory fakes of every port, faithful enough that the service layer's logic is really exercised.

Each fake keeps the rules of the service it stands for that the service layer depends on (Auth0's 409 on a second
grant, Key Vault's soft delete and its 409 on a deleted name, API Management's entry limit, Table Storage's ETags
and per-partition transactions) and adds two test controls:

- ``fake.fail(method, "transient" | "permanent" | exception, times=N, after=False, skip=0)``: after ``skip``
  calls that go through, the next N calls of ``method`` fail; with ``after=True`` each takes effect first and its
  answer is lost (a dropped connection);
- a :class:`CallLog` shared by the fakes numbers every external call in order; ``log.crash_at(i)`` raises
  :class:`Crash` at call ``i`` (before it or after it takes effect) to simulate a worker killed between two calls.

``fake.calls[method]`` counts the calls of each method, failed ones included.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
import secrets as _secrets
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, replace

from shared.domain.errors import LedgerConflict, PermanentError, TransientError
from shared.domain.records import FINAL_OUTCOMES, AuditEntry, CustomerRecord, OutboxEntry
from shared.service_layer.ports import (ApiGateway, Application, ApplicationSpec, ApplicationUpdate,
                                        AuthorizationServerInfo, AuthorizationServerSpec, Capacity, ClientGrant,
                                        IdentityProvider, Ledger, ResultPublisher, SecretDeletedButRecoverable,
                                        SecretInfo, SecretStore, StoredSecret, SubscriptionInfo)


class Crash(BaseException):
    """The worker process died here. A BaseException, so no ``except Exception`` in the code under test sees it."""


class CallLog:
    """Every external call of the fakes sharing this log, in order, as ``service.method``."""

    def __init__(self):
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self._crash: tuple[int, str] | None = None
        self.crashed_at: str | None = None

    def crash_at(self, index: int, *, when: str = "before") -> None:
        """Kill the worker at call ``index`` (0-based, counted from now on): ``before`` it reaches the service,
        or ``after`` the service applied it but before the worker saw the answer."""
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        with self._lock:
            self._crash = (len(self.calls) + index, when)
            self.crashed_at = None

    def begin(self, name: str) -> int:
        with self._lock:
            index = len(self.calls)
            self.calls.append(name)
        self._maybe_crash(index, "before", name)
        return index

    def end(self, index: int, name: str) -> None:
        self._maybe_crash(index, "after", name)

    def _maybe_crash(self, index: int, when: str, name: str) -> None:
        with self._lock:
            if self._crash != (index, when):
                return
            self._crash = None
            self.crashed_at = f"{when} {name} (call {index})"
        raise Crash(self.crashed_at)

    def count(self, name: str) -> int:
        return sum(1 for c in self.calls if c == name)


class FakeClock:
    def __init__(self, start: dt.datetime | None = None):
        self.now = start or dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone.utc)
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += dt.timedelta(seconds=seconds)


@dataclass
class _Failure:
    make: object  # callable returning the exception to raise
    remaining: int
    after: bool
    skip: int = 0  # calls let through before the failures start


def external(fn):
    """Route a fake's port method through the call log, the failure script and the fake's lock."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        return self._call(name, lambda: fn(self, *args, **kwargs))

    return wrapper


class _FakeService:
    service = "fake"

    def __init__(self, log: CallLog | None = None):
        self.log = log or CallLog()
        self.calls: Counter[str] = Counter()
        self._failures: dict[str, list[_Failure]] = defaultdict(list)
        self._lock = threading.RLock()

    def fail(self, method: str, kind="transient", *, times: int = 1, after: bool = False, skip: int = 0,
             retry_after: float | None = None) -> None:
        if not callable(getattr(self, method, None)):
            raise AttributeError(f"{type(self).__name__} has no method {method}")
        if isinstance(kind, BaseException):
            make = lambda exc=kind: exc  # noqa: E731
        elif isinstance(kind, type) and issubclass(kind, BaseException):
            make = lambda: kind(f"injected {kind.__name__}")  # noqa: E731
        elif kind == "transient":
            make = lambda: TransientError("injected: service unavailable (503)", service=self.service,  # noqa
                                          operation=method, status=503, retry_after=retry_after)
        elif kind == "permanent":
            make = lambda: PermanentError("injected: request refused (400)", service=self.service,  # noqa
                                          operation=method, status=400)
        else:
            raise ValueError(f"unknown failure kind {kind!r}")
        with self._lock:
            self._failures[method].append(_Failure(make, times, after, skip))

    def _next_failure(self, method: str) -> _Failure | None:
        with self._lock:
            queue = self._failures.get(method)
            if not queue:
                return None
            failure = queue[0]
            if failure.skip > 0:
                failure.skip -= 1
                return None
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.pop(0)
            return failure

    def _call(self, method: str, op):
        name = f"{self.service}.{method}"
        with self._lock:
            self.calls[method] += 1
        index = self.log.begin(name)
        failure = self._next_failure(method)
        if failure is not None and not failure.after:
            raise failure.make()
        try:
            with self._lock:
                result = op()
        except Exception:
            self.log.end(index, name)  # the service answered with an error; the worker may die before seeing it
            raise
        if failure is not None:
            raise failure.make()
        self.log.end(index, name)
        return result

    def _refuse(self, method: str, message: str, status: int = 400):
        raise PermanentError(message, service=self.service, operation=method, status=status)


# ---- Auth0 -----------------------------------------------------------------------------------------------------
THIRD_PARTY_GRANTS = {"authorization_code", "refresh_token", "client_credentials"}
APP_TYPES = {"native", "spa", "regular_web", "non_interactive"}


class FakeIdentityProvider(_FakeService, IdentityProvider):
    service = "auth0"

    def __init__(self, log: CallLog | None = None, *, max_applications: int | None = None):
        super().__init__(log)
        self.apps: dict[str, dict] = {}
        self.grants: dict[str, dict] = {}
        self.issued_secrets: list[str] = []  # every secret ever handed out, to search logs and rows for leaks
        self.max_applications = max_applications
        self._seq = 0

    @external
    def create_application(self, spec: ApplicationSpec) -> Application:
        if not spec.name or "<" in spec.name or ">" in spec.name:
            self._refuse("create_application", "name must be non-empty and must not contain < or >")
        if spec.app_type not in APP_TYPES:
            self._refuse("create_application", f"app_type {spec.app_type!r} is not allowed")
        if not spec.is_first_party and not set(spec.grant_types) <= THIRD_PARTY_GRANTS:
            self._refuse("create_application", "third-party clients may only use " + ", ".join(THIRD_PARTY_GRANTS))
        if "client_credentials" in spec.grant_types and spec.token_endpoint_auth_method == "none":
            self._refuse("create_application", "client_credentials requires a confidential client")
        meta = spec.client_metadata
        if len(meta) > 10 or any(not isinstance(v, str) or len(v) > 255 for v in meta.values()):
            self._refuse("create_application", "client_metadata: at most 10 keys, string values of 255 characters")
        if len(spec.description) > 140:
            self._refuse("create_application", "description is longer than 140 characters")
        if self.max_applications is not None and len(self.apps) >= self.max_applications:
            self._refuse("create_application", "too many applications", status=403)
        self._seq += 1
        client_id = ("" if spec.is_first_party else "tpc_") + _secrets.token_hex(8)
        secret = _secrets.token_urlsafe(48)  # Auth0 issues one even to public clients
        self.issued_secrets.append(secret)
        self.apps[client_id] = {"spec": spec, "secret": secret, "seq": self._seq}
        return self._application(client_id, with_secret=True)

    def _application(self, client_id: str, *, with_secret: bool) -> Application:
        app = self.apps[client_id]
        spec: ApplicationSpec = app["spec"]
        return Application(client_id=client_id, name=spec.name, client_metadata=dict(spec.client_metadata),
                           client_secret=app["secret"] if with_secret else None,
                           is_first_party=spec.is_first_party, app_type=spec.app_type,
                           grant_types=tuple(spec.grant_types), callbacks=tuple(spec.callbacks))

    @external
    def get_application(self, client_id: str, *, with_secret: bool = False) -> Application | None:
        return self._application(client_id, with_secret=with_secret) if client_id in self.apps else None

    @external
    def find_applications(self, customer_id: str) -> list[Application]:
        ids = sorted((a["seq"], cid) for cid, a in self.apps.items()
                     if a["spec"].client_metadata.get("customer_id") == customer_id)
        return [self._application(cid, with_secret=False) for _, cid in ids]

    @external
    def delete_application(self, client_id: str) -> bool:
        # Unlike some tenants' cascade, grants are kept: the caller must delete them, so an orphan shows.
        return self.apps.pop(client_id, None) is not None

    @external
    def set_application_metadata(self, client_id: str, metadata: dict[str, str]) -> Application | None:
        app = self.apps.get(client_id)
        if app is None:
            return None
        merged = {**app["spec"].client_metadata, **metadata}
        if len(merged) > 10:
            self._refuse("set_application_metadata", "client_metadata: at most 10 keys")
        app["spec"] = replace(app["spec"], client_metadata=merged)
        return self._application(client_id, with_secret=False)

    @external
    def rotate_secret(self, client_id: str) -> Application | None:
        app = self.apps.get(client_id)
        if app is None:
            return None
        app["secret"] = _secrets.token_urlsafe(48)
        app["rotations"] = app.get("rotations", 0) + 1
        self.issued_secrets.append(app["secret"])
        return self._application(client_id, with_secret=True)

    @external
    def update_application(self, client_id: str, update: ApplicationUpdate) -> bool:
        app = self.apps.get(client_id)
        if app is None:
            return False
        spec: ApplicationSpec = app["spec"]
        keep = lambda new, old: old if new is None else new  # noqa: E731 - a field not sent stays as it is
        grant_types = tuple(keep(update.grant_types, spec.grant_types))
        auth_method = keep(update.token_endpoint_auth_method, spec.token_endpoint_auth_method)
        if "client_credentials" in grant_types and auth_method == "none":
            self._refuse("update_application", "client_credentials requires a confidential client")
        if not spec.is_first_party and not set(grant_types) <= THIRD_PARTY_GRANTS:
            self._refuse("update_application", "third-party clients may only use " + ", ".join(THIRD_PARTY_GRANTS))
        meta = {k: v for k, v in {**spec.client_metadata, **update.client_metadata}.items() if v is not None}
        app["spec"] = replace(spec, name=keep(update.name, spec.name), app_type=keep(update.app_type, spec.app_type),
                              grant_types=grant_types, token_endpoint_auth_method=auth_method,
                              token_lifetime=keep(update.token_lifetime, spec.token_lifetime), client_metadata=meta,
                              callbacks=tuple(keep(update.callbacks, spec.callbacks)))
        return True

    @external
    def get_client_grant(self, client_id: str, audience: str) -> str | None:
        for gid, g in self.grants.items():
            if g["client_id"] == client_id and g["audience"] == audience:
                return gid
        return None

    @external
    def create_client_grant(self, client_id: str, audience: str, scopes: tuple[str, ...]) -> str | None:
        if client_id not in self.apps:
            self._refuse("create_client_grant", "client not found", status=404)
        for g in self.grants.values():
            if g["client_id"] == client_id and g["audience"] == audience:
                return None  # 409
        gid = "cgr_" + _secrets.token_hex(8)
        self.grants[gid] = {"client_id": client_id, "audience": audience, "scopes": tuple(scopes)}
        return gid

    @external
    def update_client_grant(self, grant_id: str, scopes: tuple[str, ...]) -> bool:
        if grant_id not in self.grants:
            return False
        self.grants[grant_id]["scopes"] = tuple(scopes)
        return True

    @external
    def delete_client_grant(self, grant_id: str) -> bool:
        return self.grants.pop(grant_id, None) is not None

    @external
    def list_applications(self) -> list[Application]:
        return [self._application(cid, with_secret=False)
                for cid, _ in sorted(self.apps.items(), key=lambda kv: kv[1]["seq"])]

    @external
    def list_client_grants(self, audience: str) -> list[ClientGrant]:
        return [ClientGrant(gid, g["client_id"], g["audience"], tuple(g["scopes"]))
                for gid, g in self.grants.items() if g["audience"] == audience]

    # test helpers (not port methods: they do not count as calls)
    def apps_of(self, customer_id: str) -> list[str]:
        return [cid for cid, a in sorted(self.apps.items(), key=lambda kv: kv[1]["seq"])
                if a["spec"].client_metadata.get("customer_id") == customer_id]

    def secret_of(self, client_id: str) -> str:
        return self.apps[client_id]["secret"]

    def spec_of(self, client_id: str) -> ApplicationSpec:
        return self.apps[client_id]["spec"]

    def grants_of(self, client_id: str) -> list[dict]:
        return [dict(g, id=gid) for gid, g in self.grants.items() if g["client_id"] == client_id]

    def add_application(self, spec: ApplicationSpec) -> str:
        """Create an application behind the service layer's back (no call counted)."""
        with self._lock:
            self._seq += 1
            client_id = "tpc_" + _secrets.token_hex(8)
            secret = _secrets.token_urlsafe(48)
            self.issued_secrets.append(secret)
            self.apps[client_id] = {"spec": spec, "secret": secret, "seq": self._seq}
            return client_id


# ---- Key Vault -----------------------------------------------------------------------------------------------------
_KV_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


class FakeSecretStore(_FakeService, SecretStore):
    service = "keyvault"

    def __init__(self, log: CallLog | None = None, *, purge_protection: bool = False):
        super().__init__(log)
        self.active: dict[str, dict] = {}  # lower-case name -> {"name", "versions": [...]}
        self.deleted: dict[str, dict] = {}
        self.purge_protection = purge_protection
        self.delete_waits: list[bool] = []  # ``wait`` of each delete_secret call
        # With ``lag_deletes``, a delete not waited for leaves the name *being deleted* (Key Vault finishes a soft
        # delete in the background) until finish_deletes(): set, recover and purge then answer 409 (transient).
        self.lag_deletes = False
        self.deleting: set[str] = set()

    @external
    def set_secret(self, name: str, value: str, *, content_type: str, tags: dict[str, str]) -> str:
        if not _KV_NAME.match(name):
            self._refuse("set_secret", f"secret name {name!r} must be 1-127 of 0-9a-zA-Z-")
        if not isinstance(value, str) or len(value.encode()) > 25 * 1024:
            self._refuse("set_secret", "secret value must be a string of at most 25 KB")
        if len(tags) > 15 or len(content_type) > 255:
            self._refuse("set_secret", "at most 15 tags; content type at most 255 characters")
        key = name.lower()
        self._check_not_being_deleted("set_secret", name)
        if key in self.deleted:
            raise SecretDeletedButRecoverable(f"secret {name} is currently in a deleted but recoverable state")
        version = uuid.uuid4().hex
        entry = self.active.setdefault(key, {"name": name, "versions": []})
        entry["versions"].append({"version": version, "value": value, "content_type": content_type,
                                  "tags": dict(tags)})
        return version

    @external
    def get_secret_version(self, name: str) -> str | None:
        entry = self.active.get(name.lower())
        return entry["versions"][-1]["version"] if entry else None

    @external
    def get_secret(self, name: str) -> StoredSecret | None:
        entry = self.active.get(name.lower())
        if not entry:
            return None
        v = entry["versions"][-1]
        return StoredSecret(version=v["version"], value=v["value"], tags=dict(v["tags"]))

    @external
    def delete_secret(self, name: str, *, wait: bool = False) -> bool:
        self.delete_waits.append(wait)
        entry = self.active.pop(name.lower(), None)
        if entry is None:
            return False
        self.deleted[name.lower()] = entry
        if self.lag_deletes and not wait:
            self.deleting.add(name.lower())
        return True

    def _check_not_being_deleted(self, method: str, name: str) -> None:
        if name.lower() in self.deleting:
            raise TransientError(f"Secret {name} is currently being deleted; retry later", service=self.service,
                                 operation=method, status=409)

    def finish_deletes(self) -> None:
        self.deleting.clear()

    @external
    def recover_deleted_secret(self, name: str) -> bool:
        self._check_not_being_deleted("recover_deleted_secret", name)
        entry = self.deleted.pop(name.lower(), None)
        if entry is None:
            return False
        self.active[name.lower()] = entry
        return True

    @external
    def purge_deleted_secret(self, name: str) -> bool:
        self._check_not_being_deleted("purge_deleted_secret", name)
        if name.lower() not in self.deleted:
            return False
        if self.purge_protection:
            self._refuse("purge_deleted_secret", "purge protection is enabled on this vault", status=403)
        del self.deleted[name.lower()]
        return True

    @external
    def get_secret_properties(self, name: str) -> SecretInfo | None:
        entry = self.active.get(name.lower())
        return None if entry is None else SecretInfo(entry["name"], True, dict(entry["versions"][-1]["tags"]))

    @external
    def list_secrets(self) -> list[SecretInfo]:
        return [SecretInfo(e["name"], True, dict(e["versions"][-1]["tags"])) for e in self.active.values()]

    # test helpers
    def latest(self, name: str) -> dict | None:
        entry = self.active.get(name.lower())
        return entry["versions"][-1] if entry else None

    def value(self, name: str) -> str | None:
        latest = self.latest(name)
        return latest["value"] if latest else None

    def names(self) -> list[str]:
        return sorted(self.active)

    def deleted_names(self) -> list[str]:
        return sorted(self.deleted)

    def add_deleted(self, name: str, value: str = "old-value") -> None:
        self.deleted[name.lower()] = {"name": name, "versions": [{"version": uuid.uuid4().hex, "value": value,
                                                                    "content_type": "", "tags": {}}]}


# ---- API Management ----------------------------------------------------------------------------------------------
_APIM_ID = re.compile(r"^[^*#&+:<>?]+$")


class FakeApiGateway(_FakeService, ApiGateway):
    service = "apim"

    def __init__(self, log: CallLog | None = None, *, sku: str = "Developer", limit: int | None = 10,
                 other_servers: int = 0, products: set[str] | None = None):
        super().__init__(log)
        self.sku = sku
        self.limit = limit
        self.products = products
        self.servers: dict[str, AuthorizationServerSpec] = {}
        self.subscriptions: dict[str, dict] = {}
        for i in range(other_servers):
            self.servers[f"other-{i}"] = AuthorizationServerSpec(
                display_name=f"other {i}", authorization_endpoint="https://idp.example/authorize",
                token_endpoint="https://idp.example/token", client_registration_endpoint="https://idp.example/",
                client_id=f"other-{i}", client_secret=None, grant_types=("authorizationCode",))

    @external
    def get_authorization_server_limit(self) -> Capacity:
        return Capacity(used=0, limit=self.limit, sku=self.sku)

    @external
    def get_authorization_server_capacity(self) -> Capacity:
        return Capacity(used=len(self.servers), limit=self.limit, sku=self.sku)

    @external
    def has_authorization_server(self, server_id: str) -> bool:
        return server_id.lower() in {s.lower() for s in self.servers}

    @external
    def set_authorization_server(self, server_id: str, spec: AuthorizationServerSpec) -> None:
        if not _APIM_ID.match(server_id) or len(server_id) > 80:
            self._refuse("set_authorization_server", f"invalid authorization server id {server_id!r}")
        if not 1 <= len(spec.display_name) <= 50:
            self._refuse("set_authorization_server", "displayName must be 1-50 characters")
        for fld in ("authorization_endpoint", "client_registration_endpoint", "client_id", "grant_types"):
            if not getattr(spec, fld):
                self._refuse("set_authorization_server", f"{fld} is required")
        if server_id not in self.servers and self.limit is not None and len(self.servers) >= self.limit:
            self._refuse("set_authorization_server", f"the {self.sku} tier allows {self.limit} authorization servers")
        self.servers[server_id] = spec

    @external
    def set_authorization_server_secret(self, server_id: str, client_secret: str) -> bool:
        if server_id not in self.servers:
            return False
        self.servers[server_id] = replace(self.servers[server_id], client_secret=client_secret)
        return True

    @external
    def update_authorization_server(self, server_id: str, *, display_name: str, grant_types: tuple[str, ...],
                                    default_scope: str) -> bool:
        if server_id not in self.servers:
            return False
        self.servers[server_id] = replace(self.servers[server_id], display_name=display_name,
                                          grant_types=grant_types, default_scope=default_scope)
        return True

    @external
    def delete_authorization_server(self, server_id: str) -> bool:
        return self.servers.pop(server_id, None) is not None

    @external
    def set_subscription(self, subscription_id: str, *, display_name: str, product_id: str) -> None:
        if not _APIM_ID.match(subscription_id) or len(subscription_id) > 256:
            self._refuse("set_subscription", f"invalid subscription id {subscription_id!r}")
        if not 1 <= len(display_name) <= 100:
            self._refuse("set_subscription", "displayName must be 1-100 characters")
        if self.products is not None and product_id not in self.products:
            self._refuse("set_subscription", f"product {product_id!r} not found", status=404)
        self.subscriptions[subscription_id] = {"display_name": display_name, "product_id": product_id,
                                               "state": "active"}

    @external
    def update_subscription(self, subscription_id: str, *, display_name: str, product_id: str) -> bool:
        if subscription_id not in self.subscriptions:
            return False
        if self.products is not None and product_id not in self.products:
            self._refuse("update_subscription", f"product {product_id!r} not found", status=404)
        self.subscriptions[subscription_id].update(display_name=display_name, product_id=product_id)
        return True

    @external
    def delete_subscription(self, subscription_id: str) -> bool:
        return self.subscriptions.pop(subscription_id, None) is not None

    @staticmethod
    def _server_info(server_id: str, spec: AuthorizationServerSpec) -> AuthorizationServerInfo:
        return AuthorizationServerInfo(server_id, spec.client_id, tuple(spec.grant_types), spec.default_scope)

    @external
    def get_authorization_server(self, server_id: str) -> AuthorizationServerInfo | None:
        spec = self.servers.get(server_id)
        return None if spec is None else self._server_info(server_id, spec)

    @external
    def list_authorization_servers(self) -> list[AuthorizationServerInfo]:
        return [self._server_info(k, v) for k, v in self.servers.items()]

    @external
    def get_subscription(self, subscription_id: str) -> SubscriptionInfo | None:
        sub = self.subscriptions.get(subscription_id)
        return None if sub is None else SubscriptionInfo(subscription_id, sub["state"], sub["product_id"],
                                                         sub["display_name"])

    @external
    def list_subscriptions(self) -> list[SubscriptionInfo]:
        return [SubscriptionInfo(k, v["state"], v["product_id"], v["display_name"])
                for k, v in self.subscriptions.items()]

    def customer_servers(self) -> dict[str, AuthorizationServerSpec]:
        return {k: v for k, v in self.servers.items() if not k.startswith("other-")}


# ---- Ledger ------------------------------------------------------------------------------------------------------
class FakeLedger(_FakeService, Ledger):
    """Rows are copied in and out, so the caller can never change a stored row without a write."""
    service = "ledger"

    def __init__(self, log: CallLog | None = None, *, clock=None):
        super().__init__(log)
        self.customers: dict[str, CustomerRecord] = {}
        self.audits: dict[tuple[str, str], AuditEntry] = {}
        self.outbox: dict[tuple[str, str], OutboxEntry] = {}
        self.pools: dict[str, dict] = {}  # pool -> {"used": n, "holders": set()}
        self._clock = clock

    def now(self) -> dt.datetime:
        return self._clock() if self._clock else super().now()

    @external
    def get_customer(self, customer_id: str, event_id: str | None = None
                     ) -> tuple[CustomerRecord | None, AuditEntry | None]:
        rec = self.customers.get(customer_id)
        audit = self.audits.get((customer_id, event_id)) if event_id else None
        return (rec.copy() if rec else None), (replace(audit) if audit else None)

    @external
    def create_customer(self, record: CustomerRecord) -> CustomerRecord:
        if record.customer_id in self.customers:
            raise LedgerConflict("the customer row already exists", service="ledger", operation="create_customer",
                                 status=409)
        return self._store(record)

    @external
    def update_customer(self, record: CustomerRecord, audit: AuditEntry | None = None,
                        outbox: tuple[OutboxEntry, ...] = ()) -> CustomerRecord:
        current = self.customers.get(record.customer_id)
        if current is None or record.etag is None or current.etag != record.etag:
            raise LedgerConflict("the customer row changed since it was read", service="ledger",
                                 operation="update_customer", status=412)
        if audit is not None and audit.customer_id != record.customer_id or \
                any(e.customer_id != record.customer_id for e in outbox):
            raise AssertionError("a transaction spans one partition (customer) only")
        stored = self._store(record)
        if audit is not None:
            self.audits[(audit.customer_id, audit.event_id)] = replace(audit)
        self._put_outbox(outbox)
        return stored

    def _put_outbox(self, entries) -> None:
        for entry in entries:
            self.outbox[(entry.customer_id, entry.message_id)] = entry

    def _store(self, record: CustomerRecord) -> CustomerRecord:
        stored = record.copy(etag=uuid.uuid4().hex)
        self.customers[record.customer_id] = stored
        return stored.copy()

    @external
    def set_audit(self, entry: AuditEntry, outbox: tuple[OutboxEntry, ...] = ()) -> bool:
        current = self.audits.get((entry.customer_id, entry.event_id))
        if current is not None and current.outcome in FINAL_OUTCOMES and entry.outcome != current.outcome:
            return False
        if any(e.customer_id != entry.customer_id for e in outbox):
            raise AssertionError("a transaction spans one partition (customer) only")
        self.audits[(entry.customer_id, entry.event_id)] = replace(entry)
        self._put_outbox(outbox)
        return True

    @external
    def set_outbox(self, entries: tuple[OutboxEntry, ...]) -> None:
        if len({e.customer_id for e in entries}) > 1:
            raise AssertionError("a transaction spans one partition (customer) only")
        self._put_outbox(entries)

    @external
    def list_outbox(self, customer_id: str | None = None) -> list[OutboxEntry]:
        return [e for (cid, _), e in sorted(self.outbox.items()) if customer_id is None or cid == customer_id]

    @external
    def delete_outbox(self, entry: OutboxEntry) -> bool:
        return self.outbox.pop((entry.customer_id, entry.message_id), None) is not None

    @external
    def reserve_slot(self, pool: str, holder: str, limit: int, *, seed) -> bool:
        state = self.pools.get(pool)
        if state is None:
            state = self.pools[pool] = {"used": seed(), "holders": set()}
        if holder in state["holders"]:
            return True
        if state["used"] >= limit:
            return False
        state["used"] += 1
        state["holders"].add(holder)
        return True

    @external
    def release_slot(self, pool: str, holder: str) -> bool:
        state = self.pools.get(pool)
        if state is None or holder not in state["holders"]:
            return False
        state["holders"].discard(holder)
        state["used"] -= 1
        return True

    @external
    def list_audit(self, customer_id: str) -> list[AuditEntry]:
        return [replace(e) for (cid, _), e in sorted(self.audits.items()) if cid == customer_id]

    @external
    def list_customers(self) -> list[CustomerRecord]:
        return [r.copy() for _, r in sorted(self.customers.items())]

    # test helpers
    def record(self, customer_id: str) -> CustomerRecord | None:
        return self.customers.get(customer_id)

    def audit(self, customer_id: str, event_id: str) -> AuditEntry | None:
        return self.audits.get((customer_id, event_id))


# ---- Service Bus topic -------------------------------------------------------------------------------------------
class FakeResultPublisher(_FakeService, ResultPublisher):
    """A topic with duplicate detection: a message id seen before is accepted and dropped, as Service Bus does
    within its window. ``sent`` holds every send, ``delivered`` what a subscriber receives."""
    service = "servicebus"

    def __init__(self, log: CallLog | None = None):
        super().__init__(log)
        self.sent: list[OutboxEntry] = []
        self.delivered: list[dict] = []
        self._seen: set[str] = set()

    @external
    def publish(self, entries: list[OutboxEntry]) -> None:
        import json
        for entry in entries:
            self.sent.append(entry)
            if entry.message_id in self._seen:
                continue
            self._seen.add(entry.message_id)
            self.delivered.append(json.loads(entry.body))

    def of_type(self, event_type: str, customer_id: str | None = None) -> list[dict]:
        return [e for e in self.delivered if e["type"].endswith(event_type)
                and (customer_id is None or e["data"].get("customerId") == customer_id)]
