"""The provisioning service: the entry point of the use cases (``created.py``, ``removed.py``, ``rotation.py``)
over the ports.

It owns what spans events: one event per customer at a time within this process (the ledger's claim names the
process, and a host runs several invocations at once), the failure trail every failed attempt leaves, and the audit
of events that never parsed. The outcome itself is logged once, by the message handler.
"""
from __future__ import annotations

import threading
from typing import Callable
import uuid

import logging

from ..domain import results
from ..domain.errors import CustomerBusy, InvalidEvent, RetryBudgetSpent, TransientError
from ..domain.events import CREATED, REMOVED as REMOVED_EVENT
from ..domain.events import (EVENT_TYPES, CredentialsRotationRequested, CustomerCreated, CustomerEvent,
                             CustomerRemoved, CustomerUpdated)
from ..domain.profiles import ClientProfile
from ..domain.records import (CLAIMED_ONLY, DUPLICATE, FAILED, FINAL_OUTCOMES, PROVISIONED, REJECTED, REMOVING,
                              AuditEntry)
from ..domain.records import REMOVED as REMOVED_STATUS
from . import outbox
from .core import MANAGED_BY, REASON_MAX, SKIPPED, Attempt, Core, Outcome, ProvisioningOptions, clip
from .created import SECRET_CONTENT_TYPE, apply_created
from .ports import ApiGateway, IdentityProvider, Ledger, ResultPublisher, SecretStore
from .removed import apply_removed
from .rotation import apply_rotation
from .step_log import StepLog
from .updated import apply_updated

#: audit partition of events whose customer id could not be read
UNPARSED_PARTITION = "~unparsed"
#: outbox rows written in one table transaction (the service's limit is 100 operations)
OUTBOX_BATCH = 100

#: ``source`` of the events a drift repair makes from the ledger (they never leave the process)
REPAIR_SOURCE = "/customer-provisioning/drift-repair"

__all__ = ["MANAGED_BY", "SECRET_CONTENT_TYPE", "UNPARSED_PARTITION", "Outcome", "ProvisioningOptions",
           "ProvisioningService"]


class ProvisioningService:
    def __init__(self, *, identity: IdentityProvider, secrets: SecretStore, gateway: ApiGateway, ledger: Ledger,
                 profiles: dict[str, ClientProfile], options: ProvisioningOptions, worker_id: str,
                 results: ResultPublisher | None = None, trace_context: Callable[[], object] | None = None):
        if not worker_id:
            raise ValueError("worker_id is required: it names the owner of a claim")
        self.core = Core(identity=identity, secrets=secrets, gateway=gateway, ledger=ledger, profiles=dict(profiles),
                         options=options, worker_id=worker_id, results=results)
        if trace_context is not None:
            self.core.trace_context = trace_context
        self._active: set[str] = set()  # customers an invocation of this process is applying an event to
        self._active_lock = threading.Lock()

    identity = property(lambda self: self.core.identity)
    secrets = property(lambda self: self.core.secrets)
    gateway = property(lambda self: self.core.gateway)
    ledger = property(lambda self: self.core.ledger)
    profiles = property(lambda self: self.core.profiles)
    options = property(lambda self: self.core.options)
    worker_id = property(lambda self: self.core.worker_id)
    results = property(lambda self: self.core.results)

    def handle(self, event: CustomerEvent, *, message_id: str | None = None) -> Outcome:
        """Apply one parsed event. Returns the outcome, or raises TransientError / PermanentError after recording
        the failure (``last_error``, audit *failed*, claim released). The result event committed with the outcome
        is sent before returning; when the topic cannot take it, :class:`outbox.ResultsPending` (transient) is
        raised, so the message is retried and its next delivery (a duplicate) sends it (past the retry budget the
        message handler completes it and the sweep sends the row)."""
        return self._run(Attempt(event=event, message_id=message_id))

    def repair(self, customer_id: str) -> Outcome:
        """Bring one customer's resources back to what the ledger says, through the same use cases: a provisioned
        customer's as a creation would leave them (missing ones made again, drifted settings updated in place,
        stray applications of ours deleted; also for a row an update or rotation left behind), a removed or unknown
        customer's deleted (also finishing a removal that stopped). Under the customer's claim,
        within the adapters' rate limits; the last applied event stays the last one (see ``Core.applied_event``)."""
        rec, _ = self.ledger.get_customer(customer_id)
        event_id = f"drift-repair-{uuid.uuid4().hex[:16]}"
        time = rec.last_event_time if rec is not None and rec.last_event_time else self.core.now()
        common = dict(event_id=event_id, source=REPAIR_SOURCE, time=time, customer_id=customer_id)
        if rec is not None and rec.status in (PROVISIONED, *CLAIMED_ONLY):
            event: CustomerEvent = CustomerCreated(
                type=CREATED, display_name=rec.display_name or customer_id, profile=rec.profile or "",
                plan=rec.plan, redirect_uris=rec.redirect_uri_list or (), **common)
        elif rec is None or rec.status in (REMOVED_STATUS, REMOVING):
            event = CustomerRemoved(type=REMOVED_EVENT, reason="drift repair", **common)
        else:  # a creation that did not finish: its event (or a removal) decides, not a repair
            return Outcome(SKIPPED, customer_id, event_id, rec.status,
                           "a creation that did not finish: left to its event")
        return self._run(Attempt(event=event, message_id=None, repair=True))

    def _run(self, a: Attempt) -> Outcome:
        event = a.event
        if not self._enter(event.customer_id):
            raise CustomerBusy("another invocation of this worker is applying an event to this customer",
                               service="ledger", operation="claim")
        # The customer is free again once the ledger is written: the send happens outside, so a redelivery of the
        # same event is not turned away as busy while this one publishes (both may send: same message id).
        try:
            outcome = self._dispatch(a)
        except Exception as exc:
            try:
                self.core.record_failure(a, exc)
            finally:
                self._leave(event.customer_id)
            self._send_after_failure(a)
            raise
        except BaseException:
            self._leave(event.customer_id)
            raise
        self._leave(event.customer_id)
        if outcome.result == DUPLICATE:
            # A redelivery of an applied event: the attempt that applied it may have died before sending.
            outbox.publish_pending(self.results, self.ledger, event.customer_id, a.log)
        else:
            outbox.publish(self.results, self.ledger, a.outbox, a.log)
        return outcome

    def _dispatch(self, a: Attempt) -> Outcome:
        event = a.event
        if isinstance(event, CustomerCreated):
            return apply_created(self.core, a)
        if isinstance(event, CustomerUpdated):
            return apply_updated(self.core, a)
        if isinstance(event, CustomerRemoved):
            return apply_removed(self.core, a)
        if isinstance(event, CredentialsRotationRequested):
            return apply_rotation(self.core, a)
        raise InvalidEvent("type", f"must be one of {', '.join(EVENT_TYPES)} (got {event.type!r})")

    def _send_after_failure(self, a: Attempt) -> None:
        """Best effort: the failure being raised matters more. What is not sent here stays in the outbox for the
        next delivery of the event (a redelivery sends the customer's pending rows) or the sweep."""
        if self.results is None:
            return
        try:
            if a.outbox:
                outbox.publish(self.results, self.ledger, a.outbox, a.log)
            elif a.audit is not None and a.audit.outcome in (REJECTED, FAILED):
                outbox.publish_pending(self.results, self.ledger, a.customer_id, a.log)
        except Exception:  # noqa: BLE001 - the step logged it
            pass

    def emit_results(self, events: list[results.ResultEvent]) -> int:
        """Write result events that report no state change of their own (e.g. ``customer.drift-detected`` from
        ``results.drift_detected``) to the outbox, then send them. Returns how many were sent; raises
        TransientError when the ledger or the topic cannot take them (what was written is sent by the sweep)."""
        if self.results is None:
            return 0
        sent = 0
        by_partition: dict[str, dict] = {}
        for event in events:
            row = self.core.outbox_rows(event)[0]
            # One row per message id: a table transaction refuses two operations on one row.
            by_partition.setdefault(row.customer_id, {})[row.message_id] = row
        for partition, unique in by_partition.items():
            rows = list(unique.values())
            log = StepLog(partition, None, None)
            for start in range(0, len(rows), OUTBOX_BATCH):  # a table transaction holds at most 100 operations
                batch = rows[start:start + OUTBOX_BATCH]
                with log.step("ledger.set_outbox") as s:
                    s.detail = "types=" + ",".join(sorted({r.event_type for r in batch}))
                    self.ledger.set_outbox(tuple(batch))
                sent += outbox.publish(self.results, self.ledger, batch, log)
        return sent

    def publish_pending(self, *, grace_seconds: float = outbox.SWEEP_GRACE_SECONDS) -> int:
        """The sweep: send every result event left in the outbox for longer than ``grace_seconds``."""
        return outbox.sweep(self.results, self.ledger, now=self.core.now(), grace_seconds=grace_seconds)

    def record_dead_letter(self, event: CustomerEvent, *, message_id: str | None, error: RetryBudgetSpent) -> None:
        """A transient failure whose retry budget is spent: the message goes to the dead-letter queue. Audit it
        *failed* with ``customer.provisioning-failed`` (RetryBudgetSpent), unless the event was applied meanwhile
        (an applied audit row is kept, and then no event is written). Best effort: the message is dead-lettered
        whatever happens here."""
        a = Attempt(event=event, message_id=message_id)
        reason = clip(error.reason, REASON_MAX)
        try:
            _, a.audit = self.ledger.get_customer(event.customer_id, event.event_id)
            if a.audit is not None and a.audit.outcome in FINAL_OUTCOMES:
                return
            rows = () if self.results is None else self.core.outbox_rows(results.provisioning_failed_for(
                error, customer_id=event.customer_id, event_id=event.event_id, event_type=event.type,
                event_time=event.time, now=self.core.now(), reason=reason, message_id=message_id))
            with a.log.step("ledger.set_audit") as s:
                s.outcome = FAILED
                if self.ledger.set_audit(self.core.audit_entry(a, FAILED, reason), outbox=rows):
                    outbox.publish(self.results, self.ledger, list(rows), a.log)
        except Exception:  # noqa: BLE001 - the step logged it
            a.log.emit("retry", "dead-letter-not-recorded", level=logging.WARNING)

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
        reason = clip(reason, REASON_MAX)
        entry = AuditEntry(customer_id=partition, event_id=key, event_type=event_type or "unknown", event_time=None,
                           outcome=REJECTED, reason=reason, message_id=message_id, recorded_at=self.core.now())
        # Every redelivery of the refused message writes the same row (same message id): the topic's duplicate
        # detection keeps one.
        rows = self.core.outbox_rows(results.provisioning_failed(
            customer_id=customer_id, event_id=event_id, event_type=event_type, event_time=None, now=self.core.now(),
            code="InvalidEvent", rule=reason, dead_lettered=True, message_id=message_id), partition=partition)
        log = StepLog(partition, key, message_id)
        try:
            with log.step("ledger.record_rejection") as s:
                if not self.ledger.set_audit(entry, outbox=rows):
                    s.outcome = "kept"  # an applied event's row is never rewritten by a rejection
                    s.detail = "an applied or stale event has this id; its audit row stays as it is"
                    rows = ()
        except TransientError:
            raise
        except Exception:  # noqa: BLE001 - the message goes to the dead-letter queue anyway; the step logged it
            return
        try:
            outbox.publish(self.results, self.ledger, list(rows), log)
        except Exception:  # noqa: BLE001 - left in the outbox: the next delivery writes and sends it again
            pass
