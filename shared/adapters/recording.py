"""Ports that read the real services and only record what would be written: the plan (``opstool plan``).

Each recorder wraps a real adapter: reads go through (so the plan starts from the current state), writes are
compared with what is there and recorded as a :class:`Change` (create, adopt, update, delete, recover) or dropped
when they would change nothing (an idempotent PUT of what exists). Nothing is written anywhere, the ledger
included, and no secret is read: a read "with secret" returns a placeholder, which the recorded writes never show.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Callable

from ..domain.records import AuditEntry, CustomerRecord, OutboxEntry
from ..service_layer.ports import (ApiGateway, Application, ApplicationSpec, ApplicationUpdate,
                                   AuthorizationServerInfo, AuthorizationServerSpec, Capacity, ClientGrant,
                                   IdentityProvider, Ledger, SecretInfo, SecretStore, StoredSecret, SubscriptionInfo)

PLANNED_CLIENT_ID = "(known after apply)"
PLANNED_GRANT_ID = "(known after apply)"
PLANNED_VERSION = "(known after apply)"
#: stands in for a client secret in a plan; never sent anywhere
PLACEHOLDER_SECRET = "(secret not read by the plan)"

CREATE, ADOPT, UPDATE, DELETE, RECOVER = "create", "adopt", "update", "delete", "recover"
ACTIONS = (CREATE, ADOPT, RECOVER, UPDATE, DELETE)


@dataclass(frozen=True)
class Change:
    service: str
    resource: str
    resource_id: str
    action: str
    detail: str = ""


class ChangeLog:
    def __init__(self):
        self.changes: list[Change] = []
        self.adopting = False  # a created event's plan: applications found by their metadata are adopted
        self._lock = threading.Lock()

    def add(self, service: str, resource: str, resource_id: str, action: str, detail: str = "") -> None:
        with self._lock:
            if action == DELETE:  # found, then deleted (a duplicate): a deletion, not an adoption
                self.changes = [c for c in self.changes if not (c.action == ADOPT and c.resource_id == resource_id)]
            self.changes.append(Change(service, resource, resource_id, action, detail))


class RecordingIdentityProvider(IdentityProvider):
    def __init__(self, real: IdentityProvider, log: ChangeLog):
        self.real, self.log = real, log
        self._planned: Application | None = None
        self._planned_grant = False

    def create_application(self, spec: ApplicationSpec) -> Application:
        self.log.add("auth0", "application", PLANNED_CLIENT_ID, CREATE,
                     f"name={spec.name!r} app_type={spec.app_type} grant_types={','.join(spec.grant_types)}"
                     + (f" callbacks={','.join(spec.callbacks)}" if spec.callbacks else ""))
        self._planned = Application(client_id=PLANNED_CLIENT_ID, name=spec.name,
                                    client_metadata=dict(spec.client_metadata), client_secret=PLACEHOLDER_SECRET,
                                    is_first_party=spec.is_first_party, app_type=spec.app_type,
                                    grant_types=tuple(spec.grant_types), callbacks=tuple(spec.callbacks))
        return self._planned

    def get_application(self, client_id: str, *, with_secret: bool = False) -> Application | None:
        if self._planned is not None and client_id == PLANNED_CLIENT_ID:
            return self._planned
        found = self.real.get_application(client_id, with_secret=False)
        return replace(found, client_secret=PLACEHOLDER_SECRET) if found is not None and with_secret else found

    def find_applications(self, customer_id: str) -> list[Application]:
        found = self.real.find_applications(customer_id)
        if self.log.adopting:
            for app in found:
                if app.client_metadata.get("managed_by"):
                    self.log.add("auth0", "application", app.client_id, ADOPT,
                                 "created by an earlier attempt, not recorded in the ledger")
        return found

    def delete_application(self, client_id: str) -> bool:
        exists = self.real.get_application(client_id) is not None
        if exists:
            self.log.add("auth0", "application", client_id, DELETE)
        return exists

    def get_client_grant(self, client_id: str, audience: str) -> str | None:
        if client_id == PLANNED_CLIENT_ID:
            return PLANNED_GRANT_ID if self._planned_grant else None
        return self.real.get_client_grant(client_id, audience)

    def create_client_grant(self, client_id: str, audience: str, scopes: tuple[str, ...]) -> str | None:
        self._planned_grant = True
        self.log.add("auth0", "client_grant", f"{client_id} -> {audience}", CREATE, f"scopes={','.join(scopes)}")
        return PLANNED_GRANT_ID

    def delete_client_grant(self, grant_id: str) -> bool:
        self.log.add("auth0", "client_grant", grant_id, DELETE)
        return True

    def list_applications(self) -> list[Application]:
        return self.real.list_applications()

    def update_application(self, client_id: str, update: ApplicationUpdate) -> bool:
        fields = [f"name={update.name}" if update.name is not None else "",
                  f"grant_types={','.join(update.grant_types)}" if update.grant_types is not None else "",
                  f"callbacks={','.join(update.callbacks) or '(none)'}" if update.callbacks is not None else ""]
        self.log.add("auth0", "application", client_id, UPDATE, " ".join(f for f in fields if f))
        return True

    def set_application_metadata(self, client_id: str, metadata: dict[str, str]) -> Application | None:
        app = self.real.get_application(client_id)
        if app is not None:
            self.log.add("auth0", "application", client_id, ADOPT, "marker in client_metadata")
        return app

    def rotate_secret(self, client_id: str) -> Application | None:
        app = self.real.get_application(client_id)
        if app is not None:
            self.log.add("auth0", "application", client_id, UPDATE, "client secret rotated")
        return app

    def list_client_grants(self, audience: str) -> list[ClientGrant]:
        return self.real.list_client_grants(audience)

    def update_client_grant(self, grant_id: str, scopes: tuple[str, ...]) -> bool:
        self.log.add("auth0", "client_grant", grant_id, UPDATE, f"scopes={','.join(scopes)}")
        return True


class RecordingSecretStore(SecretStore):
    def __init__(self, real: SecretStore, log: ChangeLog):
        self.real, self.log = real, log

    def set_secret(self, name: str, value: str, *, content_type: str, tags: dict[str, str]) -> str:
        current = self.real.get_secret_properties(name)
        if current is None:
            self.log.add("keyvault", "secret", name, CREATE, f"client_id={tags.get('client_id', '')}")
        elif not current.enabled or current.tags.get("client_id") != tags.get("client_id"):
            self.log.add("keyvault", "secret", name, UPDATE,
                         f"a new version for client_id={tags.get('client_id', '')}")
        return PLANNED_VERSION

    def get_secret_version(self, name: str) -> str | None:
        return self.real.get_secret_version(name)

    def get_secret_properties(self, name: str) -> SecretInfo | None:
        return self.real.get_secret_properties(name)

    def get_secret(self, name: str) -> StoredSecret | None:
        info = self.real.get_secret_properties(name)
        version = self.real.get_secret_version(name) if info is not None else None
        return None if version is None else StoredSecret(version=version, value=PLACEHOLDER_SECRET,
                                                         tags=dict(info.tags))

    def delete_secret(self, name: str, *, wait: bool = False) -> bool:
        exists = self.real.get_secret_properties(name) is not None
        if exists:
            self.log.add("keyvault", "secret", name, DELETE, "soft delete")
        return exists

    def recover_deleted_secret(self, name: str) -> bool:
        self.log.add("keyvault", "secret", name, RECOVER, "if soft-deleted")
        return True

    def purge_deleted_secret(self, name: str) -> bool:
        self.log.add("keyvault", "secret", name, DELETE, "purge, if soft-deleted")
        return True

    def list_secrets(self) -> list[SecretInfo]:
        return self.real.list_secrets()


class RecordingApiGateway(ApiGateway):
    def __init__(self, real: ApiGateway, log: ChangeLog):
        self.real, self.log = real, log

    def get_authorization_server_limit(self) -> Capacity:
        return self.real.get_authorization_server_limit()

    def get_authorization_server_capacity(self) -> Capacity:
        return self.real.get_authorization_server_capacity()

    def has_authorization_server(self, server_id: str) -> bool:
        return self.real.has_authorization_server(server_id)

    def set_authorization_server(self, server_id: str, spec: AuthorizationServerSpec) -> None:
        current = self.real.get_authorization_server(server_id)
        if current is None:
            self.log.add("apim", "authorization_server", server_id, CREATE, f"client_id={spec.client_id}")
        elif (current.client_id, set(current.grant_types), current.default_scope) != (
                spec.client_id, set(spec.grant_types), spec.default_scope):
            self.log.add("apim", "authorization_server", server_id, UPDATE, f"client_id={spec.client_id}")

    def delete_authorization_server(self, server_id: str) -> bool:
        exists = self.real.get_authorization_server(server_id) is not None
        if exists:
            self.log.add("apim", "authorization_server", server_id, DELETE)
        return exists

    def set_subscription(self, subscription_id: str, *, display_name: str, product_id: str) -> None:
        current = self.real.get_subscription(subscription_id)
        if current is None:
            self.log.add("apim", "subscription", subscription_id, CREATE, f"product={product_id} state=active")
        elif current.state != "active" or current.product_id != product_id:
            self.log.add("apim", "subscription", subscription_id, UPDATE,
                         f"product={product_id} state=active (now {current.product_id}, {current.state})")

    def set_authorization_server_secret(self, server_id: str, client_secret: str) -> bool:
        exists = self.real.get_authorization_server(server_id) is not None
        if exists:
            self.log.add("apim", "authorization_server", server_id, UPDATE, "client secret")
        return exists

    def update_authorization_server(self, server_id: str, *, display_name: str, grant_types: tuple[str, ...],
                                    default_scope: str) -> bool:
        current = self.real.get_authorization_server(server_id)
        if current is not None:
            self.log.add("apim", "authorization_server", server_id, UPDATE,
                         f"name={display_name} grant_types={','.join(grant_types)} scope={default_scope}")
        return current is not None

    def update_subscription(self, subscription_id: str, *, display_name: str, product_id: str) -> bool:
        current = self.real.get_subscription(subscription_id)
        if current is not None:
            self.log.add("apim", "subscription", subscription_id, UPDATE, f"name={display_name} product={product_id}")
        return current is not None

    def delete_subscription(self, subscription_id: str) -> bool:
        exists = self.real.get_subscription(subscription_id) is not None
        if exists:
            self.log.add("apim", "subscription", subscription_id, DELETE)
        return exists

    def get_authorization_server(self, server_id: str) -> AuthorizationServerInfo | None:
        return self.real.get_authorization_server(server_id)

    def list_authorization_servers(self) -> list[AuthorizationServerInfo]:
        return self.real.list_authorization_servers()

    def get_subscription(self, subscription_id: str) -> SubscriptionInfo | None:
        return self.real.get_subscription(subscription_id)

    def list_subscriptions(self) -> list[SubscriptionInfo]:
        return self.real.list_subscriptions()


class RecordingLedger(Ledger):
    """Reads the real ledger; writes succeed in memory only (the claim, the final state, the audit row)."""

    def __init__(self, real: Ledger):
        self.real = real

    def now(self):
        return self.real.now()

    def get_customer(self, customer_id: str, event_id: str | None = None):
        return self.real.get_customer(customer_id, event_id)

    def create_customer(self, record: CustomerRecord) -> CustomerRecord:
        return replace(record, etag="planned")

    def update_customer(self, record: CustomerRecord, audit: AuditEntry | None = None,
                        outbox: tuple[OutboxEntry, ...] = ()) -> CustomerRecord:
        return replace(record, etag="planned")

    def set_audit(self, entry: AuditEntry, outbox: tuple[OutboxEntry, ...] = ()) -> bool:
        return True

    def set_outbox(self, entries: tuple[OutboxEntry, ...]) -> None:
        pass

    def list_outbox(self, customer_id: str | None = None) -> list[OutboxEntry]:
        return []

    def delete_outbox(self, entry: OutboxEntry) -> bool:
        return True

    def reserve_slot(self, pool: str, holder: str, limit: int, *, seed: Callable[[], int]) -> bool:
        return True

    def release_slot(self, pool: str, holder: str) -> bool:
        return True

    def list_audit(self, customer_id: str) -> list[AuditEntry]:
        return self.real.list_audit(customer_id)

    def list_customers(self) -> list[CustomerRecord]:
        return self.real.list_customers()
