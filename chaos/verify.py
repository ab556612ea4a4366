"""Compare what the services and the ledger hold with what the events say they must hold.

Three views, each computed from the stand-ins' own state (``emulators.inspect``), never from the app:

- against the events (``mismatches``): per customer the newest event by time decides. created: exactly one Auth0
  application with one grant, the secret in Key Vault (confidential profiles) holding that application's current
  secret, the APIM authorization server and an active subscription, and a ledger row ``provisioned`` naming those
  ids. removed: nothing live, ledger ``removed``;
- against the ledger (``orphans``): resources nobody owns: unattributed ones, live ones of a customer the ledger
  says removed, Auth0 applications other than the one the ledger names, customers with resources and no ledger row;
- per event (``lost``): every event sent is applied (audit ``applied`` or ``stale``; a resend counts on the same
  row) or is in the dead-letter queue with its reason (the ledger's, or the rule the app dead-lettered it with:
  a spent retry budget on a customer another worker held leaves no ledger reason, only the dead-letter
  description); an invalid event must be dead-lettered and audited ``rejected`` with its reason.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from functions.settlement import INVALID_EVENT, PERMANENT_FAILURE, RETRY_BUDGET_SPENT, UNKNOWN_PROFILE
from shared.domain import naming
from shared.domain.records import APPLIED, PROVISIONED, REJECTED, REMOVED, STALE

from .workload import CREATED, Workload


#: dead-letter reasons the app gives itself, with the rule as the description (functions/settlement.py)
APP_REASONS = {INVALID_EVENT, UNKNOWN_PROFILE, RETRY_BUDGET_SPENT, PERMANENT_FAILURE}


@dataclass
class DeadLetter:
    sequence_number: int
    message_id: str | None
    event_id: str | None
    customer_id: str | None
    reason: str | None
    description: str | None


@dataclass
class Verdict:
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    mismatches: dict[str, list[str]] = field(default_factory=dict)
    #: customers left part-way: some resources but not all, or a ledger row still provisioning/removing
    half_provisioned: list[str] = field(default_factory=list)
    unexplained: dict[str, list[str]] = field(default_factory=dict)  # mismatches no dead-lettered event explains
    dead_lettered: list[str] = field(default_factory=list)  # "<event id> (<customer>): <reason>"
    outcomes: Counter = field(default_factory=Counter)  # audit outcome -> events
    deliveries: int = 0  # sum of the audit rows' attempts


def dead_letters(connection_string: str, queue: str) -> list[DeadLetter]:
    from .leak_scan import browse

    out: list[DeadLetter] = []
    for msg in browse(connection_string, queue, dead_letter=True):
        event_id = customer_id = None
        try:
            doc = json.loads(b"".join(msg.body))
            event_id = doc.get("id")
            customer_id = (doc.get("data") or {}).get("customerId")
        except (ValueError, TypeError, AttributeError):
            pass
        out.append(DeadLetter(msg.sequence_number, msg.message_id, event_id, customer_id,
                              msg.dead_letter_reason, msg.dead_letter_error_description))
    return out


def _states(stack) -> tuple[dict, dict]:
    auth0 = {c["client_id"]: c for c in stack.control("auth0").state().get("clients", [])}
    vault = stack.control("keyvault").state().get("secrets") or {}
    latest = {}
    for name, secret in vault.items():
        versions = secret.get("versions") or []
        if versions:
            latest[name.lower()] = versions[-1].get("value")
    return auth0, latest


def verify(stack, workload: Workload, ledger, dlq: list[DeadLetter]) -> Verdict:
    from emulators.inspect import view_customers

    ids = [c.customer_id for c in workload.customers] + [e.customer_id for e in workload.invalid]
    view = view_customers(stack, ids)
    records = {r.customer_id: r for r in ledger.list_customers()}
    auth0_clients, vault_values = _states(stack)
    v = Verdict(duplicates=view.duplicates())
    dead_by_event: dict[str, list[DeadLetter]] = {}
    for d in dlq:
        if d.event_id:
            dead_by_event.setdefault(d.event_id, []).append(d)

    # -- orphans: against the ledger --------------------------------------------------------------------------
    v.orphans += [f"unattributed: {item}" for item in view.unattributed]
    for cid, res in view.customers.items():
        rec = records.get(cid)
        if rec is None:
            if res.live:
                v.orphans.append(f"{cid}: resources but no ledger row ({res.line()})")
            continue
        if rec.status == REMOVED and res.live:
            v.orphans.append(f"{cid}: ledger says removed, still live: {res.line()}")
        if rec.status == PROVISIONED:
            extra = [a for a in res.auth0_applications if a != rec.auth0_client_id]
            if extra:
                v.orphans.append(f"{cid}: Auth0 application(s) {extra} besides the ledger's {rec.auth0_client_id}")

    # -- per customer: against the events ---------------------------------------------------------------------
    for cust in workload.customers:
        cid, res, rec = cust.customer_id, view.of(cust.customer_id), records.get(cust.customer_id)
        problems: list[str] = []
        if cust.expected == CREATED:
            if rec is None or rec.status != PROVISIONED:
                problems.append(f"ledger status {rec.status if rec else 'none'}, expected provisioned")
            if len(res.auth0_applications) != 1:
                problems.append(f"{len(res.auth0_applications)} Auth0 applications, expected 1")
            elif rec is not None and rec.auth0_client_id != res.auth0_applications[0]:
                problems.append(f"the ledger names {rec.auth0_client_id or 'no'} Auth0 application, Auth0 holds "
                                f"{res.auth0_applications[0]}")
            if len(res.auth0_grants) != 1 or (rec is not None and rec.auth0_client_grant_id not in res.auth0_grants):
                problems.append(f"{len(res.auth0_grants)} grants (ledger: {rec.auth0_client_grant_id if rec else '-'})")
            name = naming.secret_name(cid)
            if cust.confidential:
                if res.secrets != [name] or (rec is not None and rec.keyvault_secret_name != name):
                    problems.append(f"Key Vault secrets {res.secrets}, expected [{name}]")
                elif len(res.auth0_applications) == 1:
                    current = (auth0_clients.get(res.auth0_applications[0]) or {}).get("client_secret")
                    if not current or vault_values.get(name.lower()) != current:
                        problems.append("Key Vault does not hold the application's current secret")
            elif res.secrets:
                problems.append(f"Key Vault secrets {res.secrets} for a public client")
            server = naming.authorization_server_id(cid)
            if [s.lower() for s in res.authorization_servers] != [server] or \
                    (rec is not None and rec.apim_authorization_server_id != server):
                problems.append(f"APIM authorization servers {res.authorization_servers}, expected [{server}]")
            sub = naming.subscription_id(cid)
            if {k.lower(): s for k, s in res.subscriptions.items()} != {sub: "active"} or \
                    (rec is not None and rec.apim_subscription_id != sub):
                problems.append(f"APIM subscriptions {res.subscriptions}, expected {{{sub}: active}}")
        else:
            if rec is None or rec.status != REMOVED:
                problems.append(f"ledger status {rec.status if rec else 'none'}, expected removed")
            if res.live:
                problems.append(f"still live: {res.line()}")
        if rec is not None and rec.claim_owner:
            problems.append(f"claim still held by {rec.claim_owner}")
        whole = bool(res.auth0_applications and res.auth0_grants and res.authorization_servers and
                     any(s == "active" for s in res.subscriptions.values()) and
                     (res.secrets or not cust.confidential))
        if (res.live and not whole) or (rec is not None and rec.status not in (PROVISIONED, REMOVED)):
            v.half_provisioned.append(f"{cid}: ledger {rec.status if rec else 'none'}; {res.line()}")
        if problems:
            v.mismatches[cid] = problems
            if not any(e.event_id in dead_by_event for e in cust.events):
                v.unexplained[cid] = problems

    # -- per event: applied, or dead-lettered with its reason -------------------------------------------------
    for cust in workload.customers + [None]:
        events = cust.events if cust else workload.invalid
        audits = {}
        for cid in {e.customer_id for e in events}:
            for a in ledger.list_audit(cid):
                audits[a.event_id] = a
        for ev in events:
            audit = audits.get(ev.event_id)
            if audit is not None:
                v.deliveries += audit.attempts
            dead = dead_by_event.get(ev.event_id)
            if ev.kind == "invalid":
                v.outcomes["rejected" if audit and audit.outcome == REJECTED else "not rejected"] += 1
                if not dead or not (audit and audit.outcome == REJECTED and audit.reason):
                    v.lost.append(f"invalid event {ev.event_id} ({ev.customer_id}): dead-lettered={bool(dead)}, "
                                  f"audit={audit.outcome if audit else 'none'}")
                continue
            if audit is not None and audit.outcome in (APPLIED, STALE):
                v.outcomes[audit.outcome] += 1
                continue
            if dead:
                reason = (audit.reason if audit and audit.reason else None) or \
                         (records.get(ev.customer_id).last_error if records.get(ev.customer_id) else None) or \
                         (dead[0].description if dead[0].reason in APP_REASONS else None)
                v.outcomes["dead-lettered"] += 1
                v.dead_lettered.append(f"{ev.event_id} ({ev.customer_id}, {ev.kind}): "
                                       f"{dead[0].reason}; ledger: {reason or '(no reason)'}")
                if not dead[0].reason or not reason:
                    v.lost.append(f"{ev.event_id} ({ev.customer_id}): dead-lettered without a reason")
                continue
            v.lost.append(f"{ev.event_id} ({ev.customer_id}, {ev.kind}): neither applied "
                          f"(audit {audit.outcome if audit else 'none'}) nor dead-lettered")
    return v
