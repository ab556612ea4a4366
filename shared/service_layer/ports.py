"""The ports the service layer depends on. Adapters implement them over the real SDKs; unit tests use fakes.

Conventions (as in the Azure SDK for Python): ``get_`` returns the thing or ``None`` when it does not exist,
``set_`` creates or replaces, ``delete_`` returns ``False`` when there was nothing to delete ("already gone" is
success for a removal), ``list_``/``find_`` return lists. Every method raises only
:class:`~shared.domain.errors.TransientError` or :class:`~shared.domain.errors.PermanentError` (the adapter
classifies), never an SDK exception, and never puts a secret into an exception message.
"""
from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

from ..domain.drift import Finding
from ..domain.records import AuditEntry, CustomerRecord, OutboxEntry


# ---- Auth0 -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApplicationSpec:
    name: str
    app_type: str
    grant_types: tuple[str, ...]
    token_endpoint_auth_method: str
    is_first_party: bool
    token_lifetime: int
    client_metadata: dict[str, str]
    callbacks: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Application:
    client_id: str
    name: str
    client_metadata: dict[str, str] = field(default_factory=dict)
    client_secret: str | None = field(default=None, repr=False)  # never printed
    is_first_party: bool | None = None
    app_type: str | None = None
    grant_types: tuple[str, ...] | None = None  # None: not read
    callbacks: tuple[str, ...] | None = None
    description: str | None = None  # None: not read


@dataclass(frozen=True)
class ClientGrant:
    grant_id: str
    client_id: str
    audience: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class ApplicationUpdate:
    """What a PATCH sets on an existing application (a customer.updated, a drift repair): a field left ``None`` is
    not sent and stays as it is; ``client_metadata`` is merged, a ``None`` value removing its key."""
    name: str | None = None
    app_type: str | None = None
    grant_types: tuple[str, ...] | None = None
    token_endpoint_auth_method: str | None = None
    token_lifetime: int | None = None
    client_metadata: dict[str, str | None] = field(default_factory=dict)
    callbacks: tuple[str, ...] | None = None


class IdentityProvider(abc.ABC):
    """Auth0 Management API."""

    @abc.abstractmethod
    def create_application(self, spec: ApplicationSpec) -> Application:
        """Create exactly once: implementations must NOT retry this call themselves (a retried POST duplicates)."""

    @abc.abstractmethod
    def get_application(self, client_id: str, *, with_secret: bool = False) -> Application | None: ...

    @abc.abstractmethod
    def find_applications(self, customer_id: str) -> list[Application]:
        """Every application whose ``client_metadata.customer_id`` equals ``customer_id`` (all pages)."""

    @abc.abstractmethod
    def delete_application(self, client_id: str) -> bool: ...

    @abc.abstractmethod
    def set_application_metadata(self, client_id: str, metadata: dict[str, str]) -> Application | None:
        """Merge ``metadata`` into the application's ``client_metadata`` (Auth0's PATCH merges it; other keys and
        every other property stay as they are). None when there is no such application."""

    @abc.abstractmethod
    def rotate_secret(self, client_id: str) -> Application | None:
        """Have Auth0 issue a new client secret (the old one stops working): the application with the new secret,
        or None when there is no such application. Not retried by implementations: a retried rotation rotates
        twice."""

    @abc.abstractmethod
    def update_application(self, client_id: str, update: ApplicationUpdate) -> bool:
        """PATCH the application; False when it does not exist (404)."""

    @abc.abstractmethod
    def get_client_grant(self, client_id: str, audience: str) -> str | None:
        """The id of the grant of ``client_id`` to ``audience``, if any."""

    @abc.abstractmethod
    def create_client_grant(self, client_id: str, audience: str, scopes: tuple[str, ...]) -> str | None:
        """Returns the new grant id, or ``None`` when one already existed (409): the caller looks it up."""

    @abc.abstractmethod
    def update_client_grant(self, grant_id: str, scopes: tuple[str, ...]) -> bool:
        """Set the grant's scopes (PATCH); False when it does not exist (404)."""

    @abc.abstractmethod
    def delete_client_grant(self, grant_id: str) -> bool: ...

    # Reads and in-place updates for the drift reconciliation (and the created flow's repair mode).
    @abc.abstractmethod
    def list_applications(self) -> list[Application]:
        """Every application of the tenant (all pages), with grant types and callbacks, never a secret."""

    @abc.abstractmethod
    def list_client_grants(self, audience: str) -> list[ClientGrant]:
        """Every client grant to ``audience`` (all pages)."""


# ---- Key Vault ---------------------------------------------------------------------------------------------------
class SecretDeletedButRecoverable(Exception):
    """Set was refused because the name is soft-deleted (Key Vault 409 ObjectIsDeletedButRecoverable)."""


@dataclass(frozen=True)
class StoredSecret:
    """The latest version of a Key Vault secret."""
    version: str
    value: str = field(repr=False)  # never printed
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SecretInfo:
    """A secret's properties (never its value)."""
    name: str
    enabled: bool
    tags: dict[str, str] = field(default_factory=dict)


class SecretStore(abc.ABC):
    """Azure Key Vault secrets."""

    @abc.abstractmethod
    def set_secret(self, name: str, value: str, *, content_type: str, tags: dict[str, str]) -> str:
        """Store a new version; returns the version id. Raises SecretDeletedButRecoverable (not an error kind:
        the service layer recovers or purges and tries again)."""

    @abc.abstractmethod
    def get_secret_version(self, name: str) -> str | None:
        """The latest version id of ``name`` (properties only, never the value), or None."""

    @abc.abstractmethod
    def get_secret(self, name: str) -> StoredSecret | None:
        """The latest version, its value and tags, or None when there is no such (active) secret."""

    @abc.abstractmethod
    def delete_secret(self, name: str, *, wait: bool = False) -> bool:
        """Soft-delete. False if there was no such secret. Key Vault finishes a soft delete in the background
        (seconds at most); meanwhile the name can be neither set nor recovered nor purged (a TransientError).
        ``wait``: return only once it has finished, which a purge right after needs."""

    @abc.abstractmethod
    def recover_deleted_secret(self, name: str) -> bool:
        """Recover a soft-deleted secret and wait until usable. False if none was deleted."""

    @abc.abstractmethod
    def purge_deleted_secret(self, name: str) -> bool:
        """Purge a soft-deleted secret. False if none was deleted."""

    @abc.abstractmethod
    def get_secret_properties(self, name: str) -> SecretInfo | None:
        """The latest version's properties (never the value), or None."""

    @abc.abstractmethod
    def list_secrets(self) -> list[SecretInfo]:
        """The properties of every (not deleted) secret of the vault."""


# ---- API Management ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthorizationServerSpec:
    display_name: str
    authorization_endpoint: str
    token_endpoint: str
    client_registration_endpoint: str
    client_id: str
    client_secret: str | None = field(repr=False)
    grant_types: tuple[str, ...]
    default_scope: str = ""
    description: str = ""


@dataclass(frozen=True)
class Capacity:
    used: int
    limit: int | None  # None: no documented limit for this tier
    sku: str


@dataclass(frozen=True)
class AuthorizationServerInfo:
    server_id: str
    client_id: str | None
    grant_types: tuple[str, ...] = ()
    default_scope: str = ""
    display_name: str = ""
    description: str = ""  # names the customer it was written for (ownership.SERVER_DESCRIPTION)


@dataclass(frozen=True)
class SubscriptionInfo:
    subscription_id: str
    state: str  # active, suspended, submitted, rejected, cancelled, expired
    product_id: str | None  # from the scope /products/{id}; None for another scope
    #: the customer's Auth0 client id: the gateway policy accepts only that client's tokens with the subscription's
    #: keys (docs/DESIGN.md, "The gateway: one customer's credentials, and only theirs")
    display_name: str = ""


class ApiGateway(abc.ABC):
    """Azure API Management (management plane)."""

    @abc.abstractmethod
    def get_authorization_server_limit(self) -> Capacity:
        """The tier's limit (``used`` is 0: nothing is listed); cheap after the first call."""

    @abc.abstractmethod
    def get_authorization_server_capacity(self) -> Capacity:
        """The limit and the entries in use: lists every entry, so it is read once, to seed the reservation."""

    @abc.abstractmethod
    def has_authorization_server(self, server_id: str) -> bool: ...

    @abc.abstractmethod
    def set_authorization_server(self, server_id: str, spec: AuthorizationServerSpec) -> None: ...

    @abc.abstractmethod
    def set_authorization_server_secret(self, server_id: str, client_secret: str) -> bool:
        """Replace only the entry's client secret (a PATCH; the rest stays). False when there is no such entry."""

    @abc.abstractmethod
    def update_authorization_server(self, server_id: str, *, display_name: str, grant_types: tuple[str, ...],
                                    default_scope: str) -> bool:
        """PATCH what a customer update may change (the client id and secret stay); False when it does not exist."""

    @abc.abstractmethod
    def delete_authorization_server(self, server_id: str) -> bool: ...

    @abc.abstractmethod
    def set_subscription(self, subscription_id: str, *, display_name: str, product_id: str) -> None:
        """Create or update, always with state active."""

    @abc.abstractmethod
    def update_subscription(self, subscription_id: str, *, display_name: str, product_id: str) -> bool:
        """PATCH the subscription's product (scope) and display name, keeping its keys and state; False when it
        does not exist."""

    @abc.abstractmethod
    def delete_subscription(self, subscription_id: str) -> bool: ...

    @abc.abstractmethod
    def get_authorization_server(self, server_id: str) -> AuthorizationServerInfo | None: ...

    @abc.abstractmethod
    def list_authorization_servers(self) -> list[AuthorizationServerInfo]: ...

    @abc.abstractmethod
    def get_subscription(self, subscription_id: str) -> SubscriptionInfo | None: ...

    @abc.abstractmethod
    def list_subscriptions(self) -> list[SubscriptionInfo]: ...


# ---- Ledger ------------------------------------------------------------------------------------------------------
class Ledger(abc.ABC):
    """Azure Table Storage: one state row per customer, one audit row per handled event."""

    @abc.abstractmethod
    def get_customer(self, customer_id: str, event_id: str | None = None
                     ) -> tuple[CustomerRecord | None, AuditEntry | None]:
        """The customer's state row (with its etag) and, if ``event_id`` is given, that event's audit row."""

    @abc.abstractmethod
    def create_customer(self, record: CustomerRecord) -> CustomerRecord:
        """Insert; raises LedgerConflict if the row exists. Returns the record with its new etag."""

    @abc.abstractmethod
    def update_customer(self, record: CustomerRecord, audit: AuditEntry | None = None,
                        outbox: tuple[OutboxEntry, ...] = ()) -> CustomerRecord:
        """Replace the row if its etag still matches (else LedgerConflict), and write ``audit`` and the ``outbox``
        rows (result events to publish, same partition) in the same transaction. Returns the record with its new
        etag."""

    @abc.abstractmethod
    def set_audit(self, entry: AuditEntry, outbox: tuple[OutboxEntry, ...] = ()) -> bool:
        """Insert or replace one audit row, except that the row of an applied or stale event is append-only: only
        an entry with the same outcome (a duplicate delivery, counted) replaces it. False when a row was kept (and
        then the ``outbox`` rows, written in the same transaction otherwise, are not written either)."""

    @abc.abstractmethod
    def set_outbox(self, entries: tuple[OutboxEntry, ...]) -> None:
        """Insert or replace outbox rows of one partition, in one transaction (a result event with no state
        change of its own, e.g. a drift finding)."""

    @abc.abstractmethod
    def list_outbox(self, customer_id: str | None = None) -> list[OutboxEntry]:
        """The result events not yet published: of one partition, or (``None``) of every partition."""

    @abc.abstractmethod
    def delete_outbox(self, entry: OutboxEntry) -> bool:
        """Forget a published result event; False when it was gone already (another worker published it)."""

    @abc.abstractmethod
    def reserve_slot(self, pool: str, holder: str, limit: int, *, seed: Callable[[], int]) -> bool:
        """Hold one of ``limit`` slots of ``pool`` for ``holder``, atomically across every worker: True when held
        (now, or already by this holder), False when all are taken. ``seed()`` counts what is in use when the pool
        is first used (objects made before it existed)."""

    @abc.abstractmethod
    def release_slot(self, pool: str, holder: str) -> bool:
        """Give ``holder``'s slot back; False when it held none."""

    @abc.abstractmethod
    def list_audit(self, customer_id: str) -> list[AuditEntry]: ...

    @abc.abstractmethod
    def list_customers(self) -> list[CustomerRecord]: ...

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)


# ---- Service Bus: retries later ----------------------------------------------------------------------------------
class RetryScheduler(abc.ABC):
    """Puts a message on the trigger's own queue, to be delivered later (``scheduled_enqueue_time_utc``): a copy of a
    message for a retry, or an event the app asks itself to apply (a rotation its profile's secret age calls for)."""

    @abc.abstractmethod
    def schedule_retry(self, message, *, delay_seconds: float, properties: dict, message_id: str) -> None:
        """Schedule a copy of ``message`` (an InboundMessage) with ``properties`` merged into its application
        properties and a new ``message_id``. Raises TransientError when Service Bus cannot take it."""


# ---- Service Bus: result events for the CRM -----------------------------------------------------------------------
class ResultPublisher(abc.ABC):
    """Sends result events (CloudEvents, from the ledger's outbox) to the CRM's topic."""

    @abc.abstractmethod
    def publish(self, entries: list[OutboxEntry]) -> None:
        """Send each entry's ``body`` with its ``message_id`` (duplicate detection drops a second send of the
        same one). Raises TransientError when Service Bus cannot take them; the rows stay in the outbox."""


# ---- Drift reconciliation: where findings go ----------------------------------------------------------------------
class DriftReport(abc.ABC):
    """Every finding of the drift reconciliation goes through :meth:`report`, once: a log line today, and whatever
    else is attached (a ``customer.drift-detected`` event for the CRM)."""

    @abc.abstractmethod
    def report(self, finding: Finding) -> None: ...
