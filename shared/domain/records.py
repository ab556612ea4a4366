"""Ledger records: what the app knows about each customer and each event it handled.

One :class:`CustomerRecord` per customer (the state row) and one :class:`AuditEntry` per handled event id. Neither
ever holds a secret: only ids, names, versions and reasons.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

# Customer statuses
PROVISIONING = "provisioning"   # a created event is being applied (or failed part-way: last_error says why)
PROVISIONED = "provisioned"
REMOVING = "removing"           # a removed event is being applied (or failed part-way)
REMOVED = "removed"             # also the tombstone of a removal that arrived before any creation
STATUSES = (PROVISIONING, PROVISIONED, REMOVING, REMOVED)

# Audit outcomes
APPLIED = "applied"
DUPLICATE = "duplicate"
STALE = "stale"
REJECTED = "rejected"
FAILED = "failed"
OUTCOMES = (APPLIED, DUPLICATE, STALE, REJECTED, FAILED)
#: outcomes after which a redelivery of the same event id changes nothing
FINAL_OUTCOMES = (APPLIED, STALE, REJECTED)


@dataclass
class CustomerRecord:
    customer_id: str
    status: str = PROVISIONING
    profile: str | None = None
    display_name: str | None = None
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

    def claimed_by_other(self, worker: str, now: dt.datetime) -> bool:
        return bool(self.claim_owner and self.claim_owner != worker and self.claim_expires
                    and self.claim_expires > now)


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
