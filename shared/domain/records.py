"""Ledger records: what the app knows about each customer and each event it handled, and the rules of change.

One :class:`CustomerRecord` per customer (the state row) and one :class:`AuditEntry` per handled event id. Neither
ever holds a secret: only ids, names, versions and reasons. Every change of a customer's state is a method here
(claim, release, provisioned, removed, tombstone...), so the rules of what each step keeps, sets and clears live in
one place; the service layer decides *when* a transition happens, the record decides *what* it means.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

# Customer statuses
PROVISIONING = "provisioning"   # a created event is being applied (or failed part-way: last_error says why)
PROVISIONED = "provisioned"
REMOVING = "removing"           # a removed event is being applied (or failed part-way)
ROTATING = "rotating"           # a credentials rotation is being applied, under a claim
UPDATING = "updating"           # an updated event is being applied to a provisioned customer, under a claim
#: statuses that hold only while a claim does: a failed attempt goes back to provisioned, the state the row's values
#: describe (what it changed is restored, or found by the drift check and repaired)
CLAIMED_ONLY = (ROTATING, UPDATING)
REMOVED = "removed"             # also the tombstone of a removal that arrived before any creation

#: at equal times, the order of event types: a removal sent in the same second as a creation wins (the safe side:
#: no access is granted by a tie). Types not listed rank first.
TIE_RANK = {"customer.created": 0, "customer.updated": 1, "customer.removed": 2}


def event_order(time: dt.datetime, event_type: str | None, event_id: str | None) -> tuple:
    """The order of a customer's events, whatever the delivery order: time, then the type's rank at equal times,
    then the event id, so that no tie is ever decided by arrival."""
    return time, TIE_RANK.get(event_type or "", 0), event_id or ""


# Audit outcomes
APPLIED = "applied"
DUPLICATE = "duplicate"
STALE = "stale"
REJECTED = "rejected"
FAILED = "failed"
#: outcomes an audit row keeps for good: nothing but a delivery of the same event with the same outcome rewrites it
FINAL_OUTCOMES = (APPLIED, STALE)


@dataclass(frozen=True)
class Resources:
    """The ids of what a provisioned customer has in each service."""
    auth0_client_id: str
    auth0_client_grant_id: str | None
    keyvault_secret_name: str | None
    keyvault_secret_version: str | None
    apim_authorization_server_id: str | None
    apim_subscription_id: str | None


@dataclass
class CustomerRecord:
    customer_id: str
    status: str = PROVISIONING
    profile: str | None = None
    display_name: str | None = None
    # What the created event asked for beyond the profile, so the drift check knows the callbacks it wants and a
    # repair can rebuild the application: redirect URIs one per line ("" none; None on rows written before they
    # were recorded, whose callbacks the drift check then leaves alone), and the plan.
    redirect_uris: str | None = None
    plan: str | None = None  # data.plan: with the profile, it decides the grant's scopes
    # Resource ids, recorded as soon as each exists so a retry or a removal finds them.
    auth0_client_id: str | None = None
    auth0_client_grant_id: str | None = None
    keyvault_secret_name: str | None = None
    keyvault_secret_version: str | None = None
    apim_authorization_server_id: str | None = None
    apim_subscription_id: str | None = None
    # Set before the Auth0 create (whose id the server generates): a later attempt that finds it set and no
    # client id must look for the application by its customer_id metadata instead of creating a second one.
    auth0_create_intent: str | None = None  # the event id that intended the create
    # Set before Auth0 rotates the secret: the rotation request whose rotation may have happened. A later delivery
    # of that request recovers the secret Auth0 now holds instead of rotating a second time.
    rotation_event_id: str | None = None
    #: the rotation request whose new secret may not have reached Key Vault and API Management yet: set with the
    #: claim, cleared once the secret is carried to both (the rotation's end, or a drift repair)
    rotation_pending: str | None = None
    #: when the client secret now in Key Vault was issued (the first provisioning, or the last rotation): the age
    #: a profile's max_secret_age_days is checked against
    secret_issued_at: dt.datetime | None = None
    # The event being applied, and the last one that was applied.
    pending_event_id: str | None = None
    last_event_id: str | None = None
    last_event_type: str | None = None
    last_event_time: dt.datetime | None = None
    last_error: str | None = None
    # Claim: which worker is applying an event to this customer, until when (UTC).
    claim_owner: str | None = None
    claim_expires: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    etag: str | None = field(default=None, compare=False)

    def copy(self, **changes) -> "CustomerRecord":
        return replace(self, **changes)

    # ---- questions ----------------------------------------------------------------------------------------------
    def claimed_by_other(self, worker: str, now: dt.datetime, skew: dt.timedelta = dt.timedelta(0)) -> bool:
        """Another worker's claim stands until its expiry plus ``skew``, the allowance for the two clocks."""
        return bool(self.claim_owner and self.claim_owner != worker and self.claim_expires
                    and self.claim_expires + skew > now)

    def claimed_by(self, worker: str, event_id: str) -> bool:
        return self.claim_owner == worker and self.pending_event_id == event_id

    def lease_left(self, now: dt.datetime) -> float:
        """Seconds until the claim expires (negative once it has)."""
        return (self.claim_expires - now).total_seconds() if self.claim_expires else float("-inf")

    def supersedes(self, event_time: dt.datetime, event_type: str, event_id: str) -> bool:
        """The last applied event comes after this one in :func:`event_order`: this one is stale."""
        return self.last_event_time is not None and (
            event_order(self.last_event_time, self.last_event_type, self.last_event_id)
            > event_order(event_time, event_type, event_id))

    @property
    def redirect_uri_list(self) -> tuple[str, ...] | None:
        """The recorded redirect URIs; None when the row predates recording them."""
        if self.redirect_uris is None:
            return None
        return tuple(u for u in self.redirect_uris.split("\n") if u)

    @property
    def create_pending(self) -> bool:
        """A create may have happened whose client id was never recorded."""
        return bool(self.auth0_create_intent and not self.auth0_client_id)

    # ---- transitions --------------------------------------------------------------------------------------------
    @classmethod
    def new(cls, customer_id: str) -> "CustomerRecord":
        return cls(customer_id=customer_id)

    @classmethod
    def tombstone(cls, customer_id: str, event_id: str, event_type: str, event_time: dt.datetime,
                  now: dt.datetime) -> "CustomerRecord":
        """A removal of a customer never seen: its time makes a created sent earlier but delivered later stale."""
        return cls(customer_id=customer_id, status=REMOVED, last_event_id=event_id, last_event_type=event_type,
                   last_event_time=event_time, updated_at=now)

    def claim(self, worker: str, event_id: str, status: str, now: dt.datetime, ttl: dt.timedelta,
              *, profile: str | None = None, display_name: str | None = None,
              redirect_uris: tuple[str, ...] = (), plan: str | None = None) -> "CustomerRecord":
        """``worker`` applies ``event_id`` until ``now + ttl``. A create claim names the profile and, when no
        application is recorded yet, records the intent to create one before anything is created."""
        changes: dict = dict(status=status, pending_event_id=event_id, claim_owner=worker, claim_expires=now + ttl,
                             updated_at=now)
        if profile is not None:
            changes.update(profile=profile, display_name=display_name, redirect_uris="\n".join(redirect_uris),
                           plan=plan)
            if not self.auth0_client_id:
                changes["auth0_create_intent"] = event_id
        return replace(self, **changes)

    def renewed(self, now: dt.datetime, ttl: dt.timedelta) -> "CustomerRecord":
        """The same claim for ``ttl`` more from ``now``."""
        return replace(self, claim_expires=now + ttl, updated_at=now)

    def application_gone(self, event_id: str) -> "CustomerRecord":
        """The recorded application no longer exists: forget it and intend a new create, as for a first one."""
        return replace(self, auth0_client_id=None, auth0_client_grant_id=None, auth0_create_intent=event_id)

    def with_client_id(self, client_id: str) -> "CustomerRecord":
        return replace(self, auth0_client_id=client_id)

    def released(self, reason: str, now: dt.datetime, *, client_id: str | None = None,
                 create_refused: bool = False) -> "CustomerRecord":
        """The attempt failed: keep what exists, say why, free the customer for the next attempt."""
        changes: dict = dict(last_error=reason, claim_owner=None, claim_expires=None, updated_at=now)
        if self.status in CLAIMED_ONLY:
            changes["status"] = PROVISIONED
        if client_id and not self.auth0_client_id:
            changes["auth0_client_id"] = client_id  # saves the next attempt a search
        elif create_refused and not self.auth0_client_id:
            # Auth0 applied none of the create (and an earlier intent was searched for before it): the next
            # attempt need not list the whole tenant's applications to be sure.
            changes["auth0_create_intent"] = None
        return replace(self, **changes)

    def rotation_claim(self, worker: str, event_id: str, now: dt.datetime, ttl: dt.timedelta) -> "CustomerRecord":
        """``worker`` rotates the secret for ``event_id``, recorded (in the same write) before Auth0 is asked."""
        return replace(self, status=ROTATING, pending_event_id=event_id, claim_owner=worker, claim_expires=now + ttl,
                       rotation_event_id=event_id, rotation_pending=event_id, updated_at=now)

    def rotated(self, secret_version: str, now: dt.datetime) -> "CustomerRecord":
        """The new secret is in Key Vault (and API Management). The lifecycle's last event stays what it was: a
        rotation does not order created and removed events, so an older removal still applies after it."""
        return replace(self, status=PROVISIONED, keyvault_secret_version=secret_version, secret_issued_at=now,
                       rotation_pending=None, pending_event_id=None, last_error=None, claim_owner=None,
                       claim_expires=None, updated_at=now)

    def provisioned(self, event_id: str, event_type: str, event_time: dt.datetime, *, profile: str,
                    display_name: str, resources: Resources, now: dt.datetime, plan: str | None = None,
                    rotation_carried: bool | None = None) -> "CustomerRecord":
        """``rotation_carried``: a repair settled an unfinished rotation (True: it carried Auth0's new secret to Key
        Vault and API Management, the secret issued now; False: they held it already); None: not looked at."""
        issued = self.secret_issued_at if self.secret_issued_at and resources.keyvault_secret_name else (
            now if resources.keyvault_secret_name else None)
        if rotation_carried:
            issued = now
        pending = self.rotation_pending if rotation_carried is None else None
        return replace(self, status=PROVISIONED, profile=profile, display_name=display_name, secret_issued_at=issued,
                       plan=plan, rotation_pending=pending,
                       auth0_client_id=resources.auth0_client_id,
                       auth0_client_grant_id=resources.auth0_client_grant_id,
                       keyvault_secret_name=resources.keyvault_secret_name,
                       keyvault_secret_version=resources.keyvault_secret_version,
                       apim_authorization_server_id=resources.apim_authorization_server_id,
                       apim_subscription_id=resources.apim_subscription_id,
                       **self._applied(event_id, event_type, event_time, now))

    def updated(self, event_id: str, event_type: str, event_time: dt.datetime, *, profile: str, display_name: str,
                plan: str | None, grant_id: str | None, now: dt.datetime,
                redirect_uris: tuple[str, ...] | None = None) -> "CustomerRecord":
        """An update applied in place: the same resources, the new profile, name, plan and (when the update set
        them) callbacks, which the drift check compares the application with."""
        callbacks = self.redirect_uris if redirect_uris is None else "\n".join(redirect_uris)
        return replace(self, status=PROVISIONED, profile=profile, display_name=display_name, plan=plan,
                       redirect_uris=callbacks, auth0_client_grant_id=grant_id or self.auth0_client_grant_id,
                       **self._applied(event_id, event_type, event_time, now))

    def removed(self, event_id: str, event_type: str, event_time: dt.datetime, now: dt.datetime
                ) -> "CustomerRecord":
        return replace(self, status=REMOVED, plan=None, auth0_client_id=None, auth0_client_grant_id=None,
                       secret_issued_at=None, rotation_pending=None, keyvault_secret_name=None,
                       keyvault_secret_version=None,
                       apim_authorization_server_id=None,
                       apim_subscription_id=None, **self._applied(event_id, event_type, event_time, now))

    @staticmethod
    def _applied(event_id: str, event_type: str, event_time: dt.datetime, now: dt.datetime) -> dict:
        """What every applied event leaves: it is the last one, nothing is pending, the customer is free."""
        return dict(auth0_create_intent=None, pending_event_id=None, last_event_id=event_id,
                    last_event_type=event_type, last_event_time=event_time, last_error=None, claim_owner=None,
                    claim_expires=None, updated_at=now)


@dataclass
class AuditEntry:
    customer_id: str
    event_id: str
    event_type: str
    event_time: dt.datetime | None
    outcome: str
    reason: str | None = None
    attempts: int = 1
    message_id: str | None = None
    recorded_at: dt.datetime | None = None


@dataclass(frozen=True)
class OutboxEntry:
    """A result event waiting to be published, in the partition of the customer it is about (so it is written in
    the transaction of the state change it reports). ``body`` is the whole CloudEvent as JSON text: it holds ids
    and reasons only, never a secret. The row is deleted once the topic has the message."""
    customer_id: str  # the ledger partition: the customer id, or ``~unparsed`` for events without one
    message_id: str  # deterministic (source event + outcome): a republish is dropped by duplicate detection
    event_type: str
    body: str
    created_at: dt.datetime | None = None
