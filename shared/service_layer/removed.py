"""``customer.removed``: delete everything the customer has, found by the ledger's ids and by the derived names.

A removal finds what a crashed create left even when the ledger never recorded it: every resource but the Auth0
application has a name derived from the customer id, and an application whose create was intended but not recorded
is looked up by its ``client_metadata``. The grant goes before its application: a grant must never outlive its
client. A removal of a customer never seen leaves a tombstone, so a create sent earlier but delivered later is stale.
"""
from __future__ import annotations

import logging

from ..domain import naming, results
from ..domain.errors import PermanentError
from ..domain.profiles import ClientProfile
from ..domain.records import APPLIED, REMOVED, REMOVING, CustomerRecord
from .core import MANAGED_BY, SKIPPED, Attempt, Core, Outcome
from .ownership import check_secret, check_server, not_recorded_elsewhere, skip_foreign

#: the ledger's slot pool of API Management authorization servers (created.py reserves, removal gives back)
APIM_SERVER_POOL = "apim-authorization-servers"


def apply_removed(core: Core, a: Attempt) -> Outcome:
    ev = a.event
    core.read(a)
    if a.repair:
        rec = a.record
        if rec is not None and (rec.status not in (REMOVED, REMOVING) or rec.claimed_by_other(core.worker_id,
                                                                                                core.now())):
            return Outcome(SKIPPED, a.customer_id, a.event_id, rec.status,
                           "no longer removed, or busy: left to its own events")
    else:
        done = core.duplicate_or_stale(a, still_rejected=False)
        if done:
            return done
        if a.record is None:
            return write_tombstone(core, a)
    core.check_not_busy(a)
    # A repair keeps the status: a crash mid-way leaves a removed customer for the next reconciliation, not one
    # that looks stuck. A customer without a row (an orphan application) gets one, claimed, like a first event.
    core.claim(a, REMOVED if a.repair else REMOVING)
    rec = a.record
    profile = core.profiles.get(rec.profile) if rec.profile else None
    core.run([
        lambda: delete_subscriptions(core, a, rec),
        lambda: delete_authorization_servers(core, a, rec),
        lambda: delete_secrets(core, a, rec),
        lambda: delete_applications(core, a, rec, profile),
    ])
    now = core.now()
    event_id, event_type, event_time = core.applied_event(a)
    result = None if a.repair else results.deprovisioned(
        customer_id=ev.customer_id, event_id=ev.event_id, event_type=ev.type, event_time=ev.time, now=now,
        client_id=rec.auth0_client_id)
    core.commit(a, a.record.removed(event_id, event_type, event_time, now), result=result,
                reason="drift repair" if a.repair else None)
    return Outcome(APPLIED, ev.customer_id, ev.event_id, REMOVED, "resources deleted")


def write_tombstone(core: Core, a: Attempt) -> Outcome:
    ev = a.event
    tombstone = CustomerRecord.tombstone(ev.customer_id, ev.event_id, ev.type, ev.time, core.now())
    with a.log.step("ledger.create_tombstone"):
        a.record = core.ledger.create_customer(tombstone)
    outbox = core.outbox_rows(results.deprovisioned(
        customer_id=ev.customer_id, event_id=ev.event_id, event_type=ev.type, event_time=ev.time, now=core.now(),
        client_id=None, never_provisioned=True))
    with a.log.step("ledger.set_audit"):
        # The result event goes with the audit row: the tombstone alone (a crash here) is finished by the
        # redelivery, which finds the tombstone's time equal to its own and applies the removal again.
        if core.ledger.set_audit(core.audit_entry(a, APPLIED, "tombstone: the customer was never provisioned"),
                                 outbox=outbox):
            a.outbox.extend(outbox)
    return Outcome(APPLIED, ev.customer_id, ev.event_id, REMOVED, "tombstone: never provisioned")


def _unique(names) -> list[str]:
    seen, out = set(), []
    for name in names:
        if name and name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out


def _delete_each(core: Core, a: Attempt, step: str, ids: list[str | None], delete, *, recorded: str | None = None,
                 owner_of=None, kind: str = "") -> None:
    """Delete by the recorded id and by the derived name (the same one, usually), each write fenced. A name the
    row does not record is first checked with ``owner_of`` (when the service keeps a marker): one marked for
    another customer is left alone."""
    for item in _unique(ids):
        if owner_of is not None and item.lower() != (recorded or "").lower() and (owner := owner_of(core, a, item)):
            skip_foreign(a, step, kind, item, owner)
            continue
        core.fence(a, step)
        with a.log.step(step) as s:
            s.outcome = "ok" if delete(item) else "gone"
            s.detail = f"id={item}"


def delete_subscriptions(core: Core, a: Attempt, rec: CustomerRecord) -> None:
    # No marker to check: the ledger's id and the naming scheme keep customers' subscriptions apart (ownership.py).
    _delete_each(core, a, "apim.delete_subscription",
                 [rec.apim_subscription_id, naming.subscription_id(a.customer_id)], core.gateway.delete_subscription)


def delete_authorization_servers(core: Core, a: Attempt, rec: CustomerRecord) -> None:
    _delete_each(core, a, "apim.delete_authorization_server",
                 [rec.apim_authorization_server_id, naming.authorization_server_id(a.customer_id)],
                 core.gateway.delete_authorization_server, recorded=rec.apim_authorization_server_id,
                 owner_of=check_server, kind="API Management authorization server")
    # Only once the entry is gone: a slot given back early could let another customer past the tier's limit.
    with a.log.step("ledger.release_slot") as s:
        s.outcome = "ok" if core.ledger.release_slot(APIM_SERVER_POOL, a.customer_id) else "none"


def delete_secrets(core: Core, a: Attempt, rec: CustomerRecord) -> None:
    for name in _unique([rec.keyvault_secret_name, naming.secret_name(a.customer_id)]):
        if name.lower() != (rec.keyvault_secret_name or "").lower() and (owner := check_secret(core, a, name)):
            skip_foreign(a, "keyvault.delete_secret", "Key Vault secret", name, owner)
            continue
        purge = core.options.purge_deleted_secrets
        core.fence(a, "keyvault.delete_secret")
        with a.log.step("keyvault.delete_secret") as s:
            # Key Vault finishes a soft delete in the background; only a purge needs it finished. A re-creation
            # that comes meanwhile finds the name being deleted (409, transient) and is retried.
            s.outcome = "ok" if core.secrets.delete_secret(name, wait=purge) else "gone"
            s.detail = f"name={name}"
        if not purge:
            continue
        # Purge even when the delete found nothing: an earlier attempt may have deleted without purging.
        with a.log.step("keyvault.purge_deleted_secret") as s:
            try:
                s.outcome = "ok" if core.secrets.purge_deleted_secret(name) else "gone"
            except PermanentError as exc:
                # Purge protection or a missing permission: the secret is deleted, only kept for recovery until its
                # retention ends. Not a reason to fail the removal.
                s.outcome = "refused"
                s.detail = f"reason={exc.reason!r}"


def delete_applications(core: Core, a: Attempt, rec: CustomerRecord, profile: ClientProfile | None) -> None:
    audience = profile.audience if profile else None
    targets: list[tuple[str, str | None]] = []
    if rec.auth0_client_id:
        targets.append((rec.auth0_client_id, audience))
    # A create may have happened without its id being recorded; a repair looks for leftovers and orphans anyway.
    if a.repair or (not rec.auth0_client_id and rec.auth0_create_intent):
        with a.log.step("auth0.find_applications") as s:
            found = [app for app in core.identity.find_applications(a.customer_id)
                     if app.client_metadata.get("managed_by") == MANAGED_BY and app.client_id != rec.auth0_client_id]
            s.outcome = "found" if found else "none"
            s.detail = f"count={len(found)}"
        found = not_recorded_elsewhere(core, a, found)  # another customer's, whatever its marker says
        for app in found:
            own = core.profiles.get(app.client_metadata.get("profile", ""))
            targets.append((app.client_id, own.audience if own else audience))
    for client_id, aud in targets:
        grant_id = rec.auth0_client_grant_id if client_id == rec.auth0_client_id else None
        delete_application(core, a, client_id, aud, grant_id)


def delete_application(core: Core, a: Attempt, client_id: str, audience: str | None,
                       grant_id: str | None = None) -> None:
    """The grant first, then the application: a grant must never outlive its client."""
    if grant_id is None and audience:
        with a.log.step("auth0.get_client_grant") as s:
            grant_id = core.identity.get_client_grant(client_id, audience)
            s.outcome = "found" if grant_id else "none"
    elif grant_id is None:
        a.log.emit("auth0.get_client_grant", "skipped", level=logging.WARNING,
                   detail=f"client_id={client_id}: no grant recorded and the profile is unknown")
    if grant_id:
        core.fence(a, "auth0.delete_client_grant")
        with a.log.step("auth0.delete_client_grant") as s:
            s.outcome = "ok" if core.identity.delete_client_grant(grant_id) else "gone"
            s.detail = f"id={grant_id}"
    core.fence(a, "auth0.delete_application")
    with a.log.step("auth0.delete_application") as s:
        s.outcome = "ok" if core.identity.delete_application(client_id) else "gone"
        s.detail = f"client_id={client_id}"
