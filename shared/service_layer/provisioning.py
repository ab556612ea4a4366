"""The use cases: apply ``customer.created`` and ``customer.removed`` through the ports.

The flows are those of docs/DESIGN.md. What makes them safe under at-least-once delivery:

- every event is first checked against the ledger: a final audit row makes it a duplicate, an older time than the
  last applied event makes it stale;
- one worker at a time per customer: an ETag-checked claim that expires, so a dead worker's claim is taken over;
- the intent to create an Auth0 application is recorded *before* the create (Auth0 generates the id), so a later
  attempt that finds an intent without an id looks the application up instead of creating a second one;
- every other resource has a name derived from the customer id and is written with an idempotent PUT, so a retry
  repeats it harmlessly and a removal finds it even when the ledger never recorded it;
- any failure records ``last_error``, releases the claim and audits *failed* before the error goes back to the
  trigger, which retries a :class:`TransientError` and dead-letters a :class:`PermanentError`.

Secrets pass through here (Auth0 -> Key Vault, Auth0 -> API Management) but are never logged, recorded or put
into an error message: logs carry ids and outcomes only.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Callable

from ..domain import naming
from ..domain.errors import (CustomerBusy, InvalidEvent, LedgerConflict, PermanentError, ProvisioningError,
                             TransientError, UnknownProfile)
from ..domain.events import CREATED, REMOVED as REMOVED_EVENT, CustomerCreated, CustomerEvent, CustomerRemoved
from ..domain.profiles import ClientProfile
from ..domain.records import (APPLIED, DUPLICATE, FAILED, PROVISIONED, PROVISIONING, REJECTED, REMOVED, REMOVING,
                              STALE, AuditEntry, CustomerRecord)
from .concurrency import run_all
from .ports import (ApiGateway, Application, ApplicationSpec, AuthorizationServerSpec, IdentityProvider, Ledger,
                    SecretDeletedButRecoverable, SecretStore)
from .step_log import LOGGER_NAME, emit, error_reason, step

log = logging.getLogger(LOGGER_NAME)

#: ``client_metadata.managed_by`` of every application this app creates; only these are ever adopted or deleted
MANAGED_BY = "customer-provisioning"
SECRET_CONTENT_TYPE = "application/vnd.auth0.client-secret"
#: audit partition of events whose customer id could not be read
UNPARSED_PARTITION = "~unparsed"
# Auth0: client_metadata holds at most 10 keys with string values of at most 255 characters; descriptions 140.
AUTH0_METADATA_MAX_KEYS = 10
AUTH0_METADATA_MAX_VALUE = 255
AUTH0_DESCRIPTION_MAX = 140
# API Management: authorization server display names 1-50 characters, subscription display names 1-100.
APIM_SERVER_NAME_MAX = 50
APIM_SUBSCRIPTION_NAME_MAX = 100
REASON_MAX = 1024


@dataclass(frozen=True)
class ProvisioningOptions:
    auth0_domain: str
    """Auth0 tenant (or custom) domain, e.g. ``contoso.eu.auth0.com``: API Management's entry points at
    ``https://{domain}/authorize`` and ``https://{domain}/oauth/token``."""
    purge_deleted_secrets: bool = False
    """On removal purge the secret after the soft delete; on re-provisioning purge a soft-deleted name instead of
    recovering it. Off by default: purge protection refuses purges, and a recovered secret is overwritten anyway."""
    claim_ttl: float = 300.0
    """Seconds a worker's claim on a customer lasts; after that another worker may take the customer over."""
    application_name_prefix: str = ""
    """Auth0 application name = prefix + the customer's display name."""
    apim_client_registration_endpoint: str = ""
    """API Management requires this field; default ``https://{auth0_domain}/``."""


@dataclass(frozen=True)
class Outcome:
    result: str  # records.APPLIED | DUPLICATE | STALE
    customer_id: str
    event_id: str
    status: str  # the customer's status after handling; "" when the ledger has no row for the customer
    detail: str = ""


@dataclass
class _Attempt:
    """What one handling of one event has learnt so far; the failure path needs all of it."""
    event: CustomerEvent
    message_id: str | None
    record: CustomerRecord | None = None  # the latest state row we read or wrote, with its etag
    audit: AuditEntry | None = None  # this event's audit row from an earlier delivery
    claimed: bool = False
    client_id: str | None = None  # an application created or adopted in this attempt
    create_refused: bool = False  # Auth0 refused the create (429 or another 4xx): it made nothing
    started: float = field(default_factory=time.perf_counter)

    @property
    def customer_id(self) -> str:
        return self.event.customer_id

    @property
    def event_id(self) -> str:
        return self.event.event_id


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip()


def _unique(names) -> list[str]:
    seen, out = set(), []
    for name in names:
        if name and name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out


class ProvisioningService:
    def __init__(self, *, identity: IdentityProvider, secrets: SecretStore, gateway: ApiGateway, ledger: Ledger,
                 profiles: dict[str, ClientProfile], options: ProvisioningOptions, worker_id: str,
                 clock: Callable[[], dt.datetime] | None = None, max_parallel: int = 4):
        if not worker_id:
            raise ValueError("worker_id is required: it names the owner of a claim")
        if not options.auth0_domain or "/" in options.auth0_domain:
            raise ValueError("options.auth0_domain must be a host name (and port), without scheme or path")
        if any(ch in options.application_name_prefix for ch in "<>"):
            raise ValueError("options.application_name_prefix must not contain < or > (Auth0 refuses them)")
        if options.claim_ttl <= 0:
            raise ValueError("options.claim_ttl must be positive")
        self.identity = identity
        self.secrets = secrets
        self.gateway = gateway
        self.ledger = ledger
        self.profiles = dict(profiles)
        self.options = options
        self.worker_id = worker_id
        self._clock = clock or ledger.now
        self.max_parallel = max(1, int(max_parallel))
        self._active: set[str] = set()  # customers an invocation of this process is applying an event to
        self._active_lock = threading.Lock()

    # ---- entry points -------------------------------------------------------------------------------------------
    def handle(self, event: CustomerEvent, *, message_id: str | None = None) -> Outcome:
        """Apply one parsed event. Returns the outcome, or raises TransientError / PermanentError after recording
        the failure (``last_error``, audit *failed*, claim released)."""
        # The ledger claim names this process (worker_id), and a host runs several invocations per process at
        # once: two of them would both take the claim for their own. So one event per customer at a time within
        # the process, here; the claim does the same across processes.
        if not self._enter(event.customer_id):
            exc = CustomerBusy("another invocation of this worker is applying an event to this customer",
                               service="ledger", operation="claim")
            emit(event.customer_id, event.event_id, "handle", "failed", 0, level=logging.WARNING,
                 detail=f"type={event.type} error={type(exc).__name__} reason={error_reason(exc)!r}",
                 message_id=message_id)
            raise exc
        try:
            return self._handle(_Attempt(event=event, message_id=message_id))
        finally:
            self._leave(event.customer_id)

    def _enter(self, customer_id: str) -> bool:
        with self._active_lock:
            if customer_id in self._active:
                return False
            self._active.add(customer_id)
            return True

    def _leave(self, customer_id: str) -> None:
        with self._active_lock:
            self._active.discard(customer_id)

    def _handle(self, a: _Attempt) -> Outcome:
        event, message_id = a.event, a.message_id
        try:
            if isinstance(event, CustomerCreated):
                outcome = self._apply_created(a)
            elif isinstance(event, CustomerRemoved):
                outcome = self._apply_removed(a)
            else:
                raise InvalidEvent("type", f"must be {CREATED} or {REMOVED_EVENT} (got {event.type!r})")
        except Exception as exc:
            self._record_failure(a, exc)
            level = logging.WARNING if isinstance(exc, TransientError) else logging.ERROR
            emit(a.customer_id, a.event_id, "handle", "failed", self._elapsed_ms(a), level=level,
                 detail=f"type={event.type} error={type(exc).__name__} reason={error_reason(exc)!r}",
                 message_id=message_id)
            raise
        emit(a.customer_id, a.event_id, "handle", outcome.result, self._elapsed_ms(a),
             detail=f"type={event.type} status={outcome.status or '-'}" + (f" {outcome.detail}" if outcome.detail
                                                                              else ""),
             message_id=message_id)
        return outcome

    def record_rejection(self, *, reason: str, message_id: str | None, customer_id: str | None = None,
                         event_id: str | None = None, event_type: str | None = None) -> None:
        """Audit an invalid event as *rejected*: under its customer when the id could be read, else under the
        partition ``~unparsed`` keyed by message id. Raises TransientError when the ledger cannot be reached (the
        message is then retried, so no rejection goes unrecorded); any other ledger failure is logged only."""
        now = self._clock()
        if customer_id:
            partition, key = customer_id, event_id or message_id
        else:
            partition, key = UNPARSED_PARTITION, message_id or event_id
        key = key or f"unidentified-{uuid.uuid4()}"
        entry = AuditEntry(customer_id=partition, event_id=key, event_type=event_type or "unknown", event_time=None,
                           outcome=REJECTED, reason=_clip(reason, REASON_MAX), message_id=message_id,
                           recorded_at=now)
        try:
            with step(partition, key, "ledger.record_rejection", message_id=message_id):
                self.ledger.set_audit(entry)
        except TransientError:
            raise
        except Exception:  # noqa: BLE001 - the message goes to the dead-letter queue anyway; the step logged it
            return

    # ---- customer.created ---------------------------------------------------------------------------------------
    def _apply_created(self, a: _Attempt) -> Outcome:
        ev: CustomerCreated = a.event  # type: ignore[assignment]
        self._read(a)
        try:
            profile, rejection = self._profile_for(ev), None
        except (UnknownProfile, InvalidEvent) as exc:
            profile, rejection = None, exc
        done = self._duplicate_or_stale(a, still_rejected=rejection is not None)
        if done:
            return done
        if rejection is not None:
            raise rejection
        assert profile is not None
        rec = a.record
        if rec and rec.status != REMOVED and rec.auth0_client_id and rec.profile and rec.profile != profile.name:
            # The Auth0 application's kind (first party, app type) is fixed at creation.
            raise PermanentError(f"customer is provisioned with profile {rec.profile!r}; a created event cannot "
                                 f"change it to {profile.name!r}: send customer.removed first",
                                 service="provisioning", operation="profile")
        self._check_not_busy(a)
        prior_intent = rec.auth0_create_intent if rec and not rec.auth0_client_id else None
        tasks = [lambda: self._claim(a, PROVISIONING, profile=profile)]
        if profile.wants_authorization_server and not (rec and rec.apim_authorization_server_id):
            tasks.append(lambda: self._check_capacity(a, profile))
        self._run(tasks)

        found: dict[str, object] = {}

        def application():
            found["app"], found["created"] = self._ensure_application(a, profile, prior_intent)

        _, subscription = self._run([application, lambda: self._set_subscription(a, profile)])
        app: Application = found["app"]  # type: ignore[assignment]
        created_now = bool(found["created"])

        _, grant_id, secret_version, server_id = self._run([
            lambda: self._record_client_id(a, app),
            lambda: self._ensure_grant(a, profile, app.client_id, created_now),
            lambda: self._store_secret(a, profile, app) if profile.confidential else None,
            lambda: self._set_authorization_server(a, profile, app) if profile.wants_authorization_server else None,
        ])

        now = self._clock()
        final = a.record.copy(
            status=PROVISIONED, profile=profile.name, display_name=ev.display_name,
            auth0_client_id=app.client_id, auth0_client_grant_id=grant_id,
            keyvault_secret_name=naming.secret_name(ev.customer_id) if profile.confidential else None,
            keyvault_secret_version=secret_version, apim_authorization_server_id=server_id,
            apim_subscription_id=subscription, auth0_create_intent=None, pending_event_id=None,
            last_event_id=ev.event_id, last_event_type=ev.type, last_event_time=ev.time, last_error=None,
            claim_owner=None, claim_expires=None, updated_at=now)
        with step(a.customer_id, a.event_id, "ledger.commit", message_id=a.message_id):
            a.record = self.ledger.update_customer(final, self._audit_entry(a, APPLIED))
        detail = "created application" if created_now else "application existed"
        return Outcome(APPLIED, ev.customer_id, ev.event_id, PROVISIONED, f"client_id={app.client_id} ({detail})")

    def _profile_for(self, ev: CustomerCreated) -> ClientProfile:
        profile = self.profiles.get(ev.profile)
        if profile is None:
            raise UnknownProfile(ev.profile, list(self.profiles))
        if profile.redirect_uris == "required" and not ev.redirect_uris:
            raise InvalidEvent("data.redirectUris", f"is required by profile {profile.name!r}: send 1 to 20 https "
                                                    "URLs")
        return profile

    def _check_capacity(self, a: _Attempt, profile: ClientProfile) -> None:
        with step(a.customer_id, a.event_id, "apim.get_authorization_server_capacity",
                  message_id=a.message_id) as s:
            cap = self.gateway.get_authorization_server_capacity()
            s.detail = f"used={cap.used} limit={cap.limit if cap.limit is not None else 'none'} sku={cap.sku}"
        if cap.limit is None or cap.used < cap.limit:
            return
        server_id = naming.authorization_server_id(a.customer_id)
        with step(a.customer_id, a.event_id, "apim.has_authorization_server", message_id=a.message_id) as s:
            exists = self.gateway.has_authorization_server(server_id)
            s.outcome = "found" if exists else "none"
        if exists:  # left by an earlier attempt: replacing it takes no new slot
            return
        raise PermanentError(
            f"API Management tier {cap.sku} allows {cap.limit} authorization servers; {cap.used} are in use: "
            f"remove unused ones or use a profile with apim_authorization_server = \"none\" instead of "
            f"{profile.name!r}", service="apim", operation="authorization_server_capacity")

    def _ensure_application(self, a: _Attempt, profile: ClientProfile, prior_intent: str | None
                            ) -> tuple[Application, bool]:
        rec = a.record
        if rec.auth0_client_id:
            with step(a.customer_id, a.event_id, "auth0.get_application", message_id=a.message_id) as s:
                app = self.identity.get_application(rec.auth0_client_id, with_secret=profile.confidential)
                s.outcome = "found" if app else "gone"
            if app is not None:
                return app, False
            # Deleted behind our back, or by a removal that never finished: record the intent before creating
            # another one, as for a first create.
            with step(a.customer_id, a.event_id, "ledger.record_intent", message_id=a.message_id) as s:
                s.detail = f"recorded client_id={rec.auth0_client_id} no longer exists"
                a.record = self.ledger.update_customer(rec.copy(auth0_client_id=None, auth0_client_grant_id=None,
                                                                auth0_create_intent=a.event_id))
            prior_intent = a.event_id
        if prior_intent:
            app = self._adopt_application(a, profile)
            if app is not None:
                return app, False
        spec = self._application_spec(a.event, profile)  # type: ignore[arg-type]
        with step(a.customer_id, a.event_id, "auth0.create_application", message_id=a.message_id) as s:
            try:
                app = self.identity.create_application(spec)
            except ProvisioningError as exc:
                # A 429 or a validation error is an answer to a request Auth0 did not apply. A 5xx, a timeout or a
                # dropped connection may hide a create that happened: only those leave the intent standing.
                a.create_refused = exc.status is not None and (exc.status == 429 or 400 <= exc.status < 500
                                                               and exc.status != 408)
                raise
            s.detail = f"client_id={app.client_id}"
        a.client_id = app.client_id
        if profile.confidential and not app.client_secret:
            raise PermanentError("Auth0 created a confidential application without a client secret",
                                 service="auth0", operation="create_application")
        return app, True

    def _adopt_application(self, a: _Attempt, profile: ClientProfile) -> Application | None:
        """An earlier attempt recorded the intent to create but not the id: find what it created, if anything."""
        with step(a.customer_id, a.event_id, "auth0.find_applications", message_id=a.message_id) as s:
            found = self.identity.find_applications(a.customer_id)
            ours = [app for app in found if app.client_metadata.get("managed_by") == MANAGED_BY]
            s.outcome = "found" if ours else "none"
            s.detail = f"count={len(ours)}"
        if len(found) > len(ours):
            emit(a.customer_id, a.event_id, "auth0.find_applications", "ignored", level=logging.WARNING,
                 detail=f"{len(found) - len(ours)} application(s) carry this customer_id but not "
                        f"managed_by={MANAGED_BY}: left alone", message_id=a.message_id)
        if not ours:
            return None
        keep, extras = ours[0], ours[1:]
        other = keep.client_metadata.get("profile")
        if other and other != profile.name:
            raise PermanentError(f"an application with profile {other!r} (client_id={keep.client_id}) exists from "
                                 f"an earlier attempt; a created event cannot change it to {profile.name!r}: "
                                 "send customer.removed first", service="provisioning", operation="profile")
        a.client_id = keep.client_id
        if extras:
            # Only this app writes managed_by, so these are our own duplicates (a create whose answer was lost,
            # then repeated). This must not happen; say so loudly.
            emit(a.customer_id, a.event_id, "auth0.adopt_application", "duplicates", level=logging.ERROR,
                 detail=f"keeping client_id={keep.client_id}, deleting duplicates "
                        f"{','.join(x.client_id for x in extras)}", message_id=a.message_id)
            self._run([lambda x=x: self._delete_application(a, x.client_id, self._audience_of(x, profile))
                       for x in extras])
        emit(a.customer_id, a.event_id, "auth0.adopt_application", "ok", detail=f"client_id={keep.client_id}",
             message_id=a.message_id)
        if profile.confidential and not keep.client_secret:
            with step(a.customer_id, a.event_id, "auth0.get_application", message_id=a.message_id) as s:
                full = self.identity.get_application(keep.client_id, with_secret=True)
                s.outcome = "found" if full else "gone"
            if full is None:
                a.client_id = None
                return None
            keep = full
        return keep

    def _audience_of(self, app: Application, default: ClientProfile) -> str:
        other = self.profiles.get(app.client_metadata.get("profile", ""))
        return (other or default).audience

    def _application_spec(self, ev: CustomerCreated, profile: ClientProfile) -> ApplicationSpec:
        metadata = {"customer_id": ev.customer_id, "profile": profile.name, "managed_by": MANAGED_BY}
        if ev.plan:
            metadata["plan"] = ev.plan
        if len(metadata) > AUTH0_METADATA_MAX_KEYS or any(len(v) > AUTH0_METADATA_MAX_VALUE
                                                         for v in metadata.values()):
            raise PermanentError("client_metadata exceeds Auth0's limits (10 keys, 255 characters per value)",
                                 service="auth0", operation="create_application")
        callbacks = ev.redirect_uris if profile.redirect_uris != "none" else ()
        return ApplicationSpec(
            name=self.options.application_name_prefix + ev.display_name, app_type=profile.app_type,
            grant_types=profile.grant_types, token_endpoint_auth_method=profile.token_endpoint_auth_method,
            is_first_party=profile.first_party, token_lifetime=profile.token_lifetime, client_metadata=metadata,
            callbacks=tuple(callbacks),
            description=_clip(f"Customer {ev.customer_id} ({profile.name}), managed by {MANAGED_BY}",
                              AUTH0_DESCRIPTION_MAX))

    def _record_client_id(self, a: _Attempt, app: Application) -> None:
        if a.record.auth0_client_id == app.client_id:
            return
        with step(a.customer_id, a.event_id, "ledger.record_client_id", message_id=a.message_id) as s:
            s.detail = f"client_id={app.client_id}"
            a.record = self.ledger.update_customer(a.record.copy(auth0_client_id=app.client_id))

    def _ensure_grant(self, a: _Attempt, profile: ClientProfile, client_id: str, created_now: bool) -> str:
        if not created_now:  # the grant may exist already: look before creating (a create would answer 409)
            grant_id = self._get_grant(a, client_id, profile.audience)
            if grant_id:
                return grant_id
        with step(a.customer_id, a.event_id, "auth0.create_client_grant", message_id=a.message_id) as s:
            grant_id = self.identity.create_client_grant(client_id, profile.audience, profile.scopes)
            s.outcome = "ok" if grant_id else "exists"
            s.detail = f"client_id={client_id}" + (f" id={grant_id}" if grant_id else "")
        if grant_id is None:
            grant_id = self._get_grant(a, client_id, profile.audience)
            if grant_id is None:
                raise TransientError("the client grant was reported as existing but was not found",
                                     service="auth0", operation="get_client_grant")
        return grant_id

    def _get_grant(self, a: _Attempt, client_id: str, audience: str) -> str | None:
        with step(a.customer_id, a.event_id, "auth0.get_client_grant", message_id=a.message_id) as s:
            grant_id = self.identity.get_client_grant(client_id, audience)
            s.outcome = "found" if grant_id else "none"
        return grant_id

    def _store_secret(self, a: _Attempt, profile: ClientProfile, app: Application) -> str:
        if not app.client_secret:
            raise PermanentError("Auth0 returned no client secret for a confidential application",
                                 service="auth0", operation="get_application")
        name = naming.secret_name(a.customer_id)
        tags = {"customer_id": a.customer_id, "client_id": app.client_id, "profile": profile.name}
        version = self._set_secret(a, name, app.client_secret, tags)
        if version is not None:
            return version
        # The name is soft-deleted (a removal, then this re-provisioning): free it, then set again.
        how = "recover"
        if self.options.purge_deleted_secrets:
            try:
                with step(a.customer_id, a.event_id, "keyvault.purge_deleted_secret", message_id=a.message_id):
                    self.secrets.purge_deleted_secret(name)
                how = "purge"
            except PermanentError:
                pass  # purge protection (or no purge permission): recovering is the way that remains
        if how == "recover":
            with step(a.customer_id, a.event_id, "keyvault.recover_deleted_secret", message_id=a.message_id) as s:
                s.outcome = "ok" if self.secrets.recover_deleted_secret(name) else "none"
        version = self._set_secret(a, name, app.client_secret, tags)
        if version is None:
            raise TransientError(f"secret {name} is still soft-deleted after {how}", service="keyvault",
                                 operation="set_secret")
        return version

    def _set_secret(self, a: _Attempt, name: str, value: str, tags: dict[str, str]) -> str | None:
        with step(a.customer_id, a.event_id, "keyvault.set_secret", message_id=a.message_id) as s:
            s.detail = f"name={name}"
            try:
                return self.secrets.set_secret(name, value, content_type=SECRET_CONTENT_TYPE, tags=tags)
            except SecretDeletedButRecoverable:
                s.outcome = "deleted_but_recoverable"
                return None

    def _set_authorization_server(self, a: _Attempt, profile: ClientProfile, app: Application) -> str:
        ev: CustomerCreated = a.event  # type: ignore[assignment]
        if profile.confidential and not app.client_secret:
            raise PermanentError("Auth0 returned no client secret for a confidential application",
                                 service="auth0", operation="get_application")
        domain = self.options.auth0_domain
        server_id = naming.authorization_server_id(a.customer_id)
        spec = AuthorizationServerSpec(
            display_name=_clip(ev.display_name, APIM_SERVER_NAME_MAX),
            authorization_endpoint=f"https://{domain}/authorize",
            token_endpoint=f"https://{domain}/oauth/token",
            client_registration_endpoint=self.options.apim_client_registration_endpoint or f"https://{domain}/",
            client_id=app.client_id,
            client_secret=app.client_secret if profile.confidential else None,
            grant_types=profile.apim_grant_types,
            default_scope=" ".join(profile.scopes),
            description=f"Auth0 application of customer {a.customer_id} (profile {profile.name}), managed by "
                        f"{MANAGED_BY}")
        with step(a.customer_id, a.event_id, "apim.set_authorization_server", message_id=a.message_id) as s:
            s.detail = f"id={server_id}"
            self.gateway.set_authorization_server(server_id, spec)
        return server_id

    def _set_subscription(self, a: _Attempt, profile: ClientProfile) -> str:
        ev: CustomerCreated = a.event  # type: ignore[assignment]
        sub_id = naming.subscription_id(a.customer_id)
        with step(a.customer_id, a.event_id, "apim.set_subscription", message_id=a.message_id) as s:
            s.detail = f"id={sub_id} product={profile.apim_product}"
            self.gateway.set_subscription(sub_id, display_name=_clip(ev.display_name, APIM_SUBSCRIPTION_NAME_MAX),
                                          product_id=profile.apim_product)
        return sub_id

    # ---- customer.removed ---------------------------------------------------------------------------------------
    def _apply_removed(self, a: _Attempt) -> Outcome:
        ev = a.event
        self._read(a)
        done = self._duplicate_or_stale(a, still_rejected=False)
        if done:
            return done
        if a.record is None:
            return self._write_tombstone(a)
        self._check_not_busy(a)
        self._claim(a, REMOVING)
        rec = a.record
        profile = self.profiles.get(rec.profile) if rec.profile else None
        self._run([
            lambda: self._delete_subscriptions(a, rec),
            lambda: self._delete_authorization_servers(a, rec),
            lambda: self._delete_secrets(a, rec),
            lambda: self._delete_applications(a, rec, profile),
        ])
        now = self._clock()
        final = a.record.copy(
            status=REMOVED, auth0_client_id=None, auth0_client_grant_id=None, keyvault_secret_name=None,
            keyvault_secret_version=None, apim_authorization_server_id=None, apim_subscription_id=None,
            auth0_create_intent=None, pending_event_id=None, last_event_id=ev.event_id, last_event_type=ev.type,
            last_event_time=ev.time, last_error=None, claim_owner=None, claim_expires=None, updated_at=now)
        with step(a.customer_id, a.event_id, "ledger.commit", message_id=a.message_id):
            a.record = self.ledger.update_customer(final, self._audit_entry(a, APPLIED))
        return Outcome(APPLIED, ev.customer_id, ev.event_id, REMOVED, "resources deleted")

    def _write_tombstone(self, a: _Attempt) -> Outcome:
        """A removal of a customer never seen: remember its time, so that a created sent earlier but delivered
        later is recognised as stale instead of provisioning a removed customer."""
        ev = a.event
        now = self._clock()
        tombstone = CustomerRecord(customer_id=ev.customer_id, status=REMOVED, last_event_id=ev.event_id,
                                   last_event_type=ev.type, last_event_time=ev.time, updated_at=now)
        with step(a.customer_id, a.event_id, "ledger.create_tombstone", message_id=a.message_id):
            a.record = self.ledger.create_customer(tombstone)
        with step(a.customer_id, a.event_id, "ledger.set_audit", message_id=a.message_id):
            self.ledger.set_audit(self._audit_entry(a, APPLIED, "tombstone: the customer was never provisioned"))
        return Outcome(APPLIED, ev.customer_id, ev.event_id, REMOVED, "tombstone: never provisioned")

    def _delete_subscriptions(self, a: _Attempt, rec: CustomerRecord) -> None:
        for sub_id in _unique([rec.apim_subscription_id, naming.subscription_id(a.customer_id)]):
            with step(a.customer_id, a.event_id, "apim.delete_subscription", message_id=a.message_id) as s:
                s.outcome = "ok" if self.gateway.delete_subscription(sub_id) else "gone"
                s.detail = f"id={sub_id}"

    def _delete_authorization_servers(self, a: _Attempt, rec: CustomerRecord) -> None:
        for server_id in _unique([rec.apim_authorization_server_id, naming.authorization_server_id(a.customer_id)]):
            with step(a.customer_id, a.event_id, "apim.delete_authorization_server", message_id=a.message_id) as s:
                s.outcome = "ok" if self.gateway.delete_authorization_server(server_id) else "gone"
                s.detail = f"id={server_id}"

    def _delete_secrets(self, a: _Attempt, rec: CustomerRecord) -> None:
        for name in _unique([rec.keyvault_secret_name, naming.secret_name(a.customer_id)]):
            with step(a.customer_id, a.event_id, "keyvault.delete_secret", message_id=a.message_id) as s:
                s.outcome = "ok" if self.secrets.delete_secret(name) else "gone"
                s.detail = f"name={name}"
            if not self.options.purge_deleted_secrets:
                continue
            # Purge even when the delete found nothing: an earlier attempt may have deleted without purging.
            with step(a.customer_id, a.event_id, "keyvault.purge_deleted_secret", message_id=a.message_id) as s:
                try:
                    s.outcome = "ok" if self.secrets.purge_deleted_secret(name) else "gone"
                except PermanentError as exc:
                    # Purge protection or a missing permission: the secret is deleted, only kept for recovery
                    # until its retention ends. Not a reason to fail the removal.
                    s.outcome = "refused"
                    s.detail = f"reason={exc.reason!r}"

    def _delete_applications(self, a: _Attempt, rec: CustomerRecord, profile: ClientProfile | None) -> None:
        client_ids: list[str] = []
        if rec.auth0_client_id:
            client_ids.append(rec.auth0_client_id)
        elif rec.auth0_create_intent:  # a create may have happened without its id being recorded
            with step(a.customer_id, a.event_id, "auth0.find_applications", message_id=a.message_id) as s:
                found = [app for app in self.identity.find_applications(a.customer_id)
                         if app.client_metadata.get("managed_by") == MANAGED_BY]
                s.outcome = "found" if found else "none"
                s.detail = f"count={len(found)}"
            client_ids.extend(app.client_id for app in found)
        audience = profile.audience if profile else None
        for client_id in client_ids:
            grant_id = rec.auth0_client_grant_id if client_id == rec.auth0_client_id else None
            self._delete_application(a, client_id, audience, grant_id)

    def _delete_application(self, a: _Attempt, client_id: str, audience: str | None,
                            grant_id: str | None = None) -> None:
        """The grant first, then the application: a grant must never outlive its client."""
        if grant_id is None and audience:
            grant_id = self._get_grant(a, client_id, audience)
        elif grant_id is None:
            emit(a.customer_id, a.event_id, "auth0.get_client_grant", "skipped", level=logging.WARNING,
                 detail=f"client_id={client_id}: no grant recorded and the profile is unknown",
                 message_id=a.message_id)
        if grant_id:
            with step(a.customer_id, a.event_id, "auth0.delete_client_grant", message_id=a.message_id) as s:
                s.outcome = "ok" if self.identity.delete_client_grant(grant_id) else "gone"
                s.detail = f"id={grant_id}"
        with step(a.customer_id, a.event_id, "auth0.delete_application", message_id=a.message_id) as s:
            s.outcome = "ok" if self.identity.delete_application(client_id) else "gone"
            s.detail = f"client_id={client_id}"

    # ---- shared steps -------------------------------------------------------------------------------------------
    def _read(self, a: _Attempt) -> None:
        with step(a.customer_id, a.event_id, "ledger.get_customer", message_id=a.message_id) as s:
            a.record, a.audit = self.ledger.get_customer(a.customer_id, a.event_id)
            s.detail = f"status={a.record.status if a.record else 'none'}" + (
                f" audit={a.audit.outcome}" if a.audit else "")

    def _duplicate_or_stale(self, a: _Attempt, *, still_rejected: bool) -> Outcome | None:
        ev, rec, audit = a.event, a.record, a.audit
        status = rec.status if rec else ""
        # A rejection that still holds is not a duplicate: the caller raises it again, so the message keeps failing
        # until the dead-letter queue takes it (completing it here would drop it with nobody told).
        if audit is not None and audit.outcome in (APPLIED, STALE):
            # Keep the final outcome (a redelivery after this must still see it); count the delivery.
            with step(a.customer_id, a.event_id, "ledger.set_audit", message_id=a.message_id) as s:
                s.outcome = DUPLICATE
                self.ledger.set_audit(replace(audit, attempts=audit.attempts + 1,
                                              message_id=a.message_id or audit.message_id))
            return Outcome(DUPLICATE, ev.customer_id, ev.event_id, status, f"already {audit.outcome}")
        if audit is not None and audit.outcome == REJECTED and not still_rejected:
            # Rejected by a rule that depends on configuration (an unknown profile): valid now, so apply it.
            emit(a.customer_id, a.event_id, "check_duplicate", "retrying_rejected",
                 detail="rejected before, valid with the current configuration", message_id=a.message_id)
        if rec is not None and rec.last_event_time is not None and rec.last_event_time > ev.time:
            reason = (f"older than the last applied event {rec.last_event_id} "
                      f"({rec.last_event_time.isoformat()}, {rec.last_event_type})")
            with step(a.customer_id, a.event_id, "ledger.set_audit", message_id=a.message_id) as s:
                s.outcome = STALE
                self.ledger.set_audit(self._audit_entry(a, STALE, reason))
            return Outcome(STALE, ev.customer_id, ev.event_id, status, reason)
        return None

    def _check_not_busy(self, a: _Attempt) -> None:
        rec, now = a.record, self._clock()
        if rec is not None and rec.claimed_by_other(self.worker_id, now):
            wait = max(0.0, (rec.claim_expires - now).total_seconds())
            raise CustomerBusy(f"worker {rec.claim_owner} is applying event {rec.pending_event_id} to this customer "
                               f"(claim expires in {wait:.0f} s)", service="ledger", operation="claim",
                               retry_after=wait)

    def _claim(self, a: _Attempt, status: str, *, profile: ClientProfile | None = None) -> None:
        ev, now = a.event, self._clock()
        base = a.record or CustomerRecord(customer_id=ev.customer_id)
        claim = base.copy(status=status, pending_event_id=ev.event_id, claim_owner=self.worker_id,
                          claim_expires=now + dt.timedelta(seconds=self.options.claim_ttl), updated_at=now)
        if profile is not None:
            claim = claim.copy(profile=profile.name, display_name=ev.display_name)  # type: ignore[attr-defined]
            if not claim.auth0_client_id:
                claim = claim.copy(auth0_create_intent=ev.event_id)
        with step(a.customer_id, a.event_id, "ledger.claim", message_id=a.message_id) as s:
            s.detail = f"status={status} expires={claim.claim_expires.isoformat()}"
            written = (self.ledger.update_customer(claim) if a.record is not None
                       else self.ledger.create_customer(claim))
        a.record, a.claimed = written, True

    def _audit_entry(self, a: _Attempt, outcome: str, reason: str | None = None) -> AuditEntry:
        ev = a.event
        return AuditEntry(customer_id=ev.customer_id, event_id=ev.event_id, event_type=ev.type, event_time=ev.time,
                          outcome=outcome, reason=_clip(reason, REASON_MAX) if reason else None,
                          attempts=(a.audit.attempts if a.audit else 0) + 1, message_id=a.message_id,
                          recorded_at=self._clock())

    def _record_failure(self, a: _Attempt, exc: Exception) -> None:
        """Leave a trace of the failure without ever masking it: errors here are logged, not raised."""
        reason = _clip(error_reason(exc), REASON_MAX)
        try:
            if a.claimed:
                self._release_claim(a, reason)
            elif isinstance(exc, (InvalidEvent, UnknownProfile)):
                with step(a.customer_id, a.event_id, "ledger.set_audit", message_id=a.message_id) as s:
                    s.outcome = REJECTED
                    self.ledger.set_audit(self._audit_entry(a, REJECTED, reason))
            elif isinstance(exc, PermanentError):
                with step(a.customer_id, a.event_id, "ledger.set_audit", message_id=a.message_id) as s:
                    s.outcome = FAILED
                    self.ledger.set_audit(self._audit_entry(a, FAILED, reason))
            # A transient failure before the claim (busy, conflict, ledger unreachable) writes nothing: the
            # worker holding the claim may be applying this very event, and its audit row must not be
            # overwritten with *failed*.
        except Exception:  # noqa: BLE001 - the step logged it; the original error is what the trigger must see
            pass

    def _release_claim(self, a: _Attempt, reason: str) -> None:
        def failed(rec: CustomerRecord) -> CustomerRecord:
            changes = dict(last_error=reason, claim_owner=None, claim_expires=None, updated_at=self._clock())
            if a.client_id and not rec.auth0_client_id:
                changes["auth0_client_id"] = a.client_id  # saves the next attempt a search
            elif a.create_refused and not rec.auth0_client_id:
                # Nothing exists: an earlier intent was searched for before this create, and Auth0 applied none
                # of it. The next attempt need not list the whole tenant's applications to be sure.
                changes["auth0_create_intent"] = None
            return rec.copy(**changes)

        try:
            with step(a.customer_id, a.event_id, "ledger.release_claim", message_id=a.message_id) as s:
                s.outcome = FAILED
                a.record = self.ledger.update_customer(failed(a.record), self._audit_entry(a, FAILED, reason))
            return
        except LedgerConflict:
            pass
        # Our last write may have been applied although its answer was lost: look again.
        with step(a.customer_id, a.event_id, "ledger.get_customer", message_id=a.message_id) as s:
            fresh, _ = self.ledger.get_customer(a.customer_id)
            mine = bool(fresh and fresh.claim_owner == self.worker_id and fresh.pending_event_id == a.event_id)
            s.outcome = "claim_held" if mine else "claim_lost"
        if mine:
            with step(a.customer_id, a.event_id, "ledger.release_claim", message_id=a.message_id) as s:
                s.outcome = FAILED
                a.record = self.ledger.update_customer(failed(fresh), self._audit_entry(a, FAILED, reason))

    def _run(self, tasks):
        return run_all(tasks, max_workers=self.max_parallel, name="provisioning")

    @staticmethod
    def _elapsed_ms(a: _Attempt) -> int:
        return round((time.perf_counter() - a.started) * 1000)
