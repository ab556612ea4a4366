"""What every use case shares: the ports, the attempt at hand, and the claim/audit rules around each event.

- every event is first checked against the ledger: a final audit row makes it a duplicate, an older time than the
  last applied event makes it stale;
- one worker at a time per customer: an ETag-checked claim that expires, so a dead worker's claim is taken over;
- any failure records ``last_error``, releases the claim and audits *failed* before the error goes back to the
  trigger, which retries a :class:`TransientError` and dead-letters a :class:`PermanentError`.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from ..domain import results
from ..domain.errors import ClaimLost, CustomerBusy, InvalidEvent, LedgerConflict, PermanentError, UnknownProfile
from ..domain.events import FORMULA_START, CustomerEvent
from ..domain.profiles import ClientProfile
from ..domain.records import (APPLIED, DUPLICATE, FAILED, REJECTED, STALE, AuditEntry, CustomerRecord,
                              OutboxEntry)
from .concurrency import run_all
from .outbox import outbox_entry
from .ports import ApiGateway, IdentityProvider, Ledger, ResultPublisher, SecretStore
from .step_log import StepLog, error_reason

#: ``client_metadata.managed_by`` of every application this app creates; only these are ever adopted or deleted
MANAGED_BY = "customer-provisioning"
REASON_MAX = 1024
#: the result of a repair that found the customer no longer as the drift check saw it (busy, or its status changed)
SKIPPED = "skipped"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip()


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
    max_parallel_steps: int = 5
    """Independent steps of one event that run at once (1: one after another, in a fixed order). Five: the widest
    group, a creation's steps after the application, so that none of them (an ARM write of about a second among
    them) waits for another to finish."""
    fence_guard: float = 0.0
    """A worker writes outside the ledger only while its claim has at least this many seconds left (the longest
    call plus the clock skew), renewing it first otherwise; CLAIM_TTL_SECONDS is at least twice this."""
    clock_skew: float = 2.0
    """Another worker's claim is honoured until its expiry plus this many seconds."""
    keyvault_url: str = ""
    """The vault of the customers' secrets: ``customer.provisioned`` names the secret by its URI there."""
    result_type_prefix: str = ""
    """Prefix of the result events' types (the same as the events received: EVENT_TYPE_PREFIX)."""

    def __post_init__(self):
        if not self.auth0_domain or "/" in self.auth0_domain:
            raise ValueError("auth0_domain must be a host name (and port), without scheme or path")
        if any(ch in self.application_name_prefix for ch in "<>"):
            raise ValueError("application_name_prefix must not contain < or > (Auth0 refuses them)")
        if self.application_name_prefix.startswith(FORMULA_START):
            raise ValueError("application_name_prefix must not start with = + - or @ (a spreadsheet would run the "
                             "application's name as a formula)")
        if self.claim_ttl <= 0:
            raise ValueError("claim_ttl must be positive")
        if not 0 <= self.fence_guard < self.claim_ttl:
            raise ValueError("fence_guard must be shorter than claim_ttl: a fresh claim must pass its own fence")


@dataclass(frozen=True)
class Outcome:
    result: str  # records.APPLIED | DUPLICATE | STALE, or SKIPPED (a repair only)
    customer_id: str
    event_id: str
    status: str  # the customer's status after handling; "" when the ledger has no row for the customer
    detail: str = ""
    #: what a result event reports about the outcome (ids, versions, times; never a secret)
    facts: dict = field(default_factory=dict)


@dataclass
class Attempt:
    """What one handling of one event has learnt so far; the failure path needs all of it."""
    event: CustomerEvent
    message_id: str | None
    record: CustomerRecord | None = None  # the latest state row we read or wrote, with its etag
    audit: AuditEntry | None = None  # this event's audit row from an earlier delivery
    claimed: bool = False
    client_id: str | None = None  # an application created or adopted in this attempt
    create_refused: bool = False  # Auth0 refused the create (429 or another 4xx): it made nothing
    # This attempt's claim recorded the create intent (none stood before) and no create has been sent yet: a failure
    # now (the reservation, the ledger) leaves nothing in Auth0 to search for.
    intent_unsent: bool = False
    reserved: bool = False  # this attempt holds an authorization-server slot
    server_written: bool = False  # this attempt sent the authorization server's PUT
    outbox: list[OutboxEntry] = field(default_factory=list)  # result events this attempt committed, to send
    repair: bool = False  # a drift repair: the event is made from the ledger, and changes no event order
    #: a repair looked at an unfinished rotation: True when it carried Auth0's new secret to Key Vault and APIM,
    #: False when they held it already; None: not looked at
    rotation_carried: bool | None = None
    reapply: bool = False  # a created for a customer another event gave its application: what it says is set again
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self):
        self.log = StepLog(self.event.customer_id, self.event.event_id, self.message_id)
        self.lock = threading.RLock()  # parallel steps write ``record`` in turn

    @property
    def customer_id(self) -> str:
        return self.event.customer_id

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)


@dataclass
class Core:
    """The ports and the claim/audit steps every use case runs its own steps between."""
    identity: IdentityProvider
    secrets: SecretStore
    gateway: ApiGateway
    ledger: Ledger
    profiles: dict[str, ClientProfile]
    options: ProvisioningOptions
    worker_id: str
    results: ResultPublisher | None = None  # None: no result events (nothing is written to the outbox)
    #: the current trace context (a TraceContext or None), put on every result event written while an event is
    #: handled; the composition root passes telemetry's, so the service layer stays free of OpenTelemetry
    trace_context: Callable[[], object] = lambda: None

    def now(self) -> dt.datetime:
        return self.ledger.now()

    def run(self, tasks: list[Callable]):
        return run_all(tasks, max_workers=self.options.max_parallel_steps, name="provisioning")

    # ---- before the work ----------------------------------------------------------------------------------------
    def read(self, a: Attempt) -> None:
        with a.log.step("ledger.get_customer") as s:
            a.record, a.audit = self.ledger.get_customer(a.customer_id, a.event_id)
            s.detail = f"status={a.record.status if a.record else 'none'}" + (
                f" audit={a.audit.outcome}" if a.audit else "")

    def duplicate(self, a: Attempt) -> Outcome | None:
        """This event's audit row has a final outcome: count the delivery, change nothing else."""
        ev, rec, audit = a.event, a.record, a.audit
        # A rejection that still holds is not a duplicate: the caller raises it again, so the message keeps failing
        # until the dead-letter queue takes it (completing it here would drop it with nobody told).
        if audit is None or audit.outcome not in (APPLIED, STALE):
            return None
        # Keep the final outcome (a redelivery after this must still see it); count the delivery.
        with a.log.step("ledger.set_audit") as s:
            s.outcome = DUPLICATE
            self.ledger.set_audit(replace(audit, attempts=audit.attempts + 1,
                                          message_id=a.message_id or audit.message_id))
        return Outcome(DUPLICATE, ev.customer_id, ev.event_id, rec.status if rec else "", f"already {audit.outcome}")

    def duplicate_or_stale(self, a: Attempt, *, still_rejected: bool) -> Outcome | None:
        ev, rec, audit = a.event, a.record, a.audit
        status = rec.status if rec else ""
        done = self.duplicate(a)
        if done:
            return done
        if audit is not None and audit.outcome == REJECTED and not still_rejected:
            # Rejected by a rule that depends on configuration (an unknown profile): valid now, so apply it.
            a.log.emit("check_duplicate", "retrying_rejected",
                       detail="rejected before, valid with the current configuration")
        if rec is not None and rec.supersedes(ev.time, ev.type, ev.event_id):
            when = "older than" if rec.last_event_time > ev.time else "at the same time as, and ordered before,"
            reason = (f"{when} the last applied event {rec.last_event_id} "
                      f"({rec.last_event_time.isoformat()}, {rec.last_event_type})")
            with a.log.step("ledger.set_audit") as s:
                s.outcome = STALE
                self.ledger.set_audit(self.audit_entry(a, STALE, reason))
            return Outcome(STALE, ev.customer_id, ev.event_id, status, reason)
        return None

    def applied_event(self, a: Attempt) -> tuple:
        """The (id, type, time) the final write records as the last applied event. A repair keeps the ledger's:
        it is no CRM event, and must not make a CRM event sent before it (and delivered after it) stale."""
        if a.repair:
            rec = a.record
            return rec.last_event_id, rec.last_event_type, rec.last_event_time
        return a.event.event_id, a.event.type, a.event.time

    def check_not_busy(self, a: Attempt) -> None:
        rec, now = a.record, self.now()
        skew = dt.timedelta(seconds=self.options.clock_skew)
        if rec is not None and rec.claimed_by_other(self.worker_id, now, skew):
            if rec.lease_left(now) < 0:  # expired, and within the skew allowance: taken over in a moment
                a.log.emit("ledger.claim", "expired-pending", detail=f"owner={rec.claim_owner}")
            wait = max(0.0, (rec.claim_expires + skew - now).total_seconds())
            raise CustomerBusy(f"worker {rec.claim_owner} is applying event {rec.pending_event_id} to this customer "
                               f"(claim expires in {wait:.0f} s)", service="ledger", operation="claim",
                               retry_after=wait)

    def claim(self, a: Attempt, status: str, *, profile: ClientProfile | None = None) -> None:
        ev = a.event
        base = a.record or CustomerRecord.new(ev.customer_id)
        claim = base.claim(self.worker_id, ev.event_id, status, self.now(),
                           dt.timedelta(seconds=self.options.claim_ttl),
                           profile=profile.name if profile else None,
                           display_name=getattr(ev, "display_name", None) if profile else None,
                           redirect_uris=tuple(getattr(ev, "redirect_uris", ()) or ()) if profile else (),
                           plan=getattr(ev, "plan", None) if profile else None)
        with a.log.step("ledger.claim") as s:
            s.detail = f"status={status} expires={claim.claim_expires.isoformat()}"
            written = (self.ledger.update_customer(claim) if a.record is not None
                       else self.ledger.create_customer(claim))
        a.record, a.claimed = written, True

    def fence(self, a: Attempt, step: str) -> None:
        """Before each write outside the ledger: the claim must be this attempt's, with at least the guard left
        (the longest call plus the clock skew), so the write lands before any other worker may take the customer
        over. When less is left (a stall, a long throttle wait) the claim is renewed, ETag-checked; when another
        worker took it meanwhile, the write is refused (ClaimLost, transient: the new holder carries on)."""
        # Without the lock first: a step must not wait for a sibling's ledger write (update_record holds the lock)
        # when the claim has time enough. The record is replaced whole, never changed in place, and a newer one only
        # ever holds the same claim or a renewed one, so the copy read here says no more than the lock would.
        rec, now = a.record, self.now()
        if rec.claimed_by(self.worker_id, a.event_id) and rec.lease_left(now) >= self.options.fence_guard:
            return
        with a.lock:
            now = self.now()
            if a.record.claimed_by(self.worker_id, a.event_id) and \
                    a.record.lease_left(now) >= self.options.fence_guard:
                return
            ttl = dt.timedelta(seconds=self.options.claim_ttl)
            if a.record.claimed_by(self.worker_id, a.event_id) and a.record.lease_left(now) >= 0:
                try:
                    with a.log.step("ledger.renew_claim") as s:
                        a.record = self.ledger.update_customer(a.record.renewed(now, ttl))
                        s.detail = f"before={step} expires={a.record.claim_expires.isoformat()}"
                    return
                except LedgerConflict:
                    if self._refresh_if_mine(a):
                        with a.log.step("ledger.renew_claim"):
                            a.record = self.ledger.update_customer(a.record.renewed(self.now(), ttl))
                        return
            a.log.emit(step, "fenced", level=logging.WARNING,
                       detail=f"claim_left_s={a.record.lease_left(now):.1f}: the claim expired, or another worker "
                              "took the customer over; nothing written")
            raise ClaimLost(f"the claim on this customer expired or was taken over before {step}",
                            service="ledger", operation="fence")

    def update_record(self, a: Attempt, change: Callable[[CustomerRecord], CustomerRecord], step: str) -> None:
        """Write a change to the state row under this attempt's claim; parallel steps take turns, and a conflict
        with our own last write (an answer lost) is read again rather than taken for a lost claim."""
        with a.lock:
            try:
                with a.log.step(step):
                    a.record = self.ledger.update_customer(change(a.record))
                return
            except LedgerConflict:
                if not self._refresh_if_mine(a):
                    raise ClaimLost(f"the claim on this customer was taken over before {step}", service="ledger",
                                    operation="fence") from None
            with a.log.step(step):
                a.record = self.ledger.update_customer(change(a.record))

    def _refresh_if_mine(self, a: Attempt) -> bool:
        with a.log.step("ledger.get_customer") as s:
            fresh, _ = self.ledger.get_customer(a.customer_id)
            mine = bool(fresh and fresh.claimed_by(self.worker_id, a.event_id))
            s.outcome = "claim_held" if mine else "claim_lost"
        if mine:
            a.record = fresh
        return mine

    # ---- after the work -----------------------------------------------------------------------------------------
    def commit(self, a: Attempt, final: CustomerRecord, outcome: str = APPLIED, reason: str | None = None,
               result: results.ResultEvent | None = None) -> None:
        """The end state, this event's audit row and its result event (the outbox row), in one ledger
        transaction; the event is sent after it (``outbox.publish``)."""
        outbox = self.outbox_rows(result)
        with a.log.step("ledger.commit"):
            a.record = self.ledger.update_customer(final, self.audit_entry(a, outcome, reason), outbox=outbox)
        a.outbox.extend(outbox)

    def outbox_rows(self, result: results.ResultEvent | None, partition: str | None = None
                    ) -> tuple[OutboxEntry, ...]:
        if result is None or self.results is None:
            return ()
        if result.trace_context is None:
            result = replace(result, trace_context=self.trace_context())
        return (outbox_entry(result, partition=partition, type_prefix=self.options.result_type_prefix,
                             now=self.now()),)

    def failure_result(self, a: Attempt, exc: Exception, reason: str) -> results.ResultEvent | None:
        """``customer.provisioning-failed`` for a failure that sends the event to the dead-letter queue; none for a
        redelivery of an event already refused for the same reason (its event was written then)."""
        if not isinstance(exc, PermanentError) or self.results is None:
            return None
        if a.audit is not None and a.audit.outcome in (REJECTED, FAILED) and a.audit.reason == reason:
            return None
        ev = a.event
        return results.provisioning_failed_for(exc, customer_id=ev.customer_id, event_id=ev.event_id,
                                               event_type=ev.type, event_time=ev.time, now=self.now(),
                                               reason=reason, message_id=a.message_id)

    def audit_entry(self, a: Attempt, outcome: str, reason: str | None = None) -> AuditEntry:
        ev = a.event
        return AuditEntry(customer_id=ev.customer_id, event_id=ev.event_id, event_type=ev.type, event_time=ev.time,
                          outcome=outcome, reason=clip(reason, REASON_MAX) if reason else None,
                          attempts=(a.audit.attempts if a.audit else 0) + 1, message_id=a.message_id,
                          recorded_at=self.now())

    def record_failure(self, a: Attempt, exc: Exception) -> None:
        """Leave a trace of the failure without ever masking it: errors here are logged, not raised."""
        reason = clip(error_reason(exc), REASON_MAX)
        try:
            outbox = self.outbox_rows(self.failure_result(a, exc, reason))
            if a.claimed:
                self.release_claim(a, reason, outbox)
            elif isinstance(exc, (InvalidEvent, UnknownProfile)):
                with a.log.step("ledger.set_audit") as s:
                    s.outcome = REJECTED
                    if self.ledger.set_audit(self.audit_entry(a, REJECTED, reason), outbox=outbox):
                        a.outbox.extend(outbox)
            elif isinstance(exc, PermanentError):
                with a.log.step("ledger.set_audit") as s:
                    s.outcome = FAILED
                    if self.ledger.set_audit(self.audit_entry(a, FAILED, reason), outbox=outbox):
                        a.outbox.extend(outbox)
            # A transient failure before the claim (busy, conflict, ledger unreachable) writes nothing: the
            # worker holding the claim may be applying this very event, and its audit row must not be
            # overwritten with *failed*.
        except Exception:  # noqa: BLE001 - the step logged it; the original error is what the trigger must see
            pass

    def release_claim(self, a: Attempt, reason: str, outbox: tuple[OutboxEntry, ...] = ()) -> None:
        def released(rec: CustomerRecord) -> CustomerRecord:
            return rec.released(reason, self.now(), client_id=a.client_id,
                                create_refused=a.create_refused or a.intent_unsent)

        try:
            with a.log.step("ledger.release_claim"):
                a.record = self.ledger.update_customer(released(a.record), self.audit_entry(a, FAILED, reason),
                                                       outbox=outbox)
            a.outbox.extend(outbox)
            return
        except LedgerConflict:
            pass
        # Our last write may have been applied although its answer was lost: look again. A claim another worker
        # holds now is left alone (its holder writes the row from here on).
        if self._refresh_if_mine(a):
            with a.log.step("ledger.release_claim"):
                a.record = self.ledger.update_customer(released(a.record), self.audit_entry(a, FAILED, reason),
                                                       outbox=outbox)
            a.outbox.extend(outbox)
