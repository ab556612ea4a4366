"""The provisioning service: the entry point of the use cases (``created.py``, ``removed.py``) over the ports.

It owns what spans events: one event per customer at a time within this process (the ledger's claim names the
process, and a host runs several invocations at once), the failure trail every failed attempt leaves, and the audit
of events that never parsed. The outcome itself is logged once, by the message handler.
"""
from __future__ import annotations

import threading
import uuid

from ..domain.errors import CustomerBusy, InvalidEvent, TransientError
from ..domain.events import CREATED, REMOVED as REMOVED_EVENT, CustomerCreated, CustomerEvent, CustomerRemoved
from ..domain.profiles import ClientProfile
from ..domain.records import PROVISIONED, REJECTED, AuditEntry
from .core import MANAGED_BY, REASON_MAX, Attempt, Core, Outcome, ProvisioningOptions, clip
from .created import SECRET_CONTENT_TYPE, apply_created
from .ports import ApiGateway, IdentityProvider, Ledger, SecretStore
from .removed import apply_removed
from .step_log import StepLog

#: audit partition of events whose customer id could not be read
UNPARSED_PARTITION = "~unparsed"
#: ``source`` of the events a drift repair makes from the ledger (they never leave the process)
REPAIR_SOURCE = "/customer-provisioning/drift-repair"

__all__ = ["MANAGED_BY", "SECRET_CONTENT_TYPE", "UNPARSED_PARTITION", "Outcome", "ProvisioningOptions",
           "ProvisioningService"]


class ProvisioningService:
    def __init__(self, *, identity: IdentityProvider, secrets: SecretStore, gateway: ApiGateway, ledger: Ledger,
                 profiles: dict[str, ClientProfile], options: ProvisioningOptions, worker_id: str):
        if not worker_id:
            raise ValueError("worker_id is required: it names the owner of a claim")
        self.core = Core(identity=identity, secrets=secrets, gateway=gateway, ledger=ledger, profiles=dict(profiles),
                         options=options, worker_id=worker_id)
        self._active: set[str] = set()  # customers an invocation of this process is applying an event to
        self._active_lock = threading.Lock()

    identity = property(lambda self: self.core.identity)
    secrets = property(lambda self: self.core.secrets)
    gateway = property(lambda self: self.core.gateway)
    ledger = property(lambda self: self.core.ledger)
    profiles = property(lambda self: self.core.profiles)
    options = property(lambda self: self.core.options)
    worker_id = property(lambda self: self.core.worker_id)

    def handle(self, event: CustomerEvent, *, message_id: str | None = None) -> Outcome:
        """Apply one parsed event. Returns the outcome, or raises TransientError / PermanentError after recording
        the failure (``last_error``, audit *failed*, claim released)."""
        return self._apply(Attempt(event=event, message_id=message_id))

    def repair(self, customer_id: str) -> Outcome:
        """Bring one customer's resources back to what the ledger says, through the same use cases: a provisioned
        customer's as a creation would leave them (missing ones made again, drifted settings updated in place,
        stray applications of ours deleted), a removed or unknown customer's deleted. Under the customer's claim,
        within the adapters' rate limits; the last applied event stays the last one (see ``Core.applied_event``)."""
        rec, _ = self.ledger.get_customer(customer_id)
        event_id = f"drift-repair-{uuid.uuid4().hex[:16]}"
        time = rec.last_event_time if rec is not None and rec.last_event_time else self.core.now()
        common = dict(event_id=event_id, source=REPAIR_SOURCE, time=time, customer_id=customer_id)
        if rec is not None and rec.status == PROVISIONED:
            event: CustomerEvent = CustomerCreated(
                type=CREATED, display_name=rec.display_name or customer_id, profile=rec.profile or "",
                plan=rec.plan, redirect_uris=rec.redirect_uri_list or (), **common)
        else:
            event = CustomerRemoved(type=REMOVED_EVENT, reason="drift repair", **common)
        return self._apply(Attempt(event=event, message_id=None, repair=True))

    def _apply(self, a: Attempt) -> Outcome:
        event = a.event
        if not self._enter(event.customer_id):
            raise CustomerBusy("another invocation of this worker is applying an event to this customer",
                               service="ledger", operation="claim")
        try:
            try:
                if isinstance(event, CustomerCreated):
                    return apply_created(self.core, a)
                if isinstance(event, CustomerRemoved):
                    return apply_removed(self.core, a)
                raise InvalidEvent("type", f"must be {CREATED} or {REMOVED_EVENT} (got {event.type!r})")
            except Exception as exc:
                self.core.record_failure(a, exc)
                raise
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

    def record_rejection(self, *, reason: str, message_id: str | None, customer_id: str | None = None,
                         event_id: str | None = None, event_type: str | None = None) -> None:
        """Audit an invalid event as *rejected*: under its customer when the id could be read, else under the
        partition ``~unparsed`` keyed by message id. Raises TransientError when the ledger cannot be reached (the
        message is then retried, so no rejection goes unrecorded); any other ledger failure is logged only."""
        if customer_id:
            partition, key = customer_id, event_id or message_id
        else:
            partition, key = UNPARSED_PARTITION, message_id or event_id
        key = key or f"unidentified-{uuid.uuid4()}"
        entry = AuditEntry(customer_id=partition, event_id=key, event_type=event_type or "unknown", event_time=None,
                           outcome=REJECTED, reason=clip(reason, REASON_MAX), message_id=message_id,
                           recorded_at=self.core.now())
        try:
            with StepLog(partition, key, message_id).step("ledger.record_rejection") as s:
                if not self.ledger.set_audit(entry):
                    s.outcome = "kept"  # an applied event's row is never rewritten by a rejection
                    s.detail = "an applied or stale event has this id; its audit row stays as it is"
        except TransientError:
            raise
        except Exception:  # noqa: BLE001 - the message goes to the dead-letter queue anyway; the step logged it
            return
