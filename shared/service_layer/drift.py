"""Drift reconciliation: compare the ledger with Auth0, Key Vault and API Management, report, optionally repair.

The check reads each service once (every page of Auth0's applications and of the grants to each audience, the
vault's secret properties, APIM's entries and subscriptions), never a secret, so its cost does not grow with the
number of calls per customer. Customers in the middle of an event (a claim held, status provisioning or removing)
are left out: their own event, or ``opstool customers``, decides them, and an application created a moment ago
under a claim must not be taken for an orphan.

Every finding goes through ``DriftReport.report`` once, in :func:`reconcile`. A repair goes through the use cases
(``ProvisioningService.repair``: the created or removed flow in repair mode), one customer at a time, under its
claim and the adapters' pacing, so it is as idempotent and as fenced as an event.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..domain import naming
from ..domain.drift import DRIFT, LEFTOVER, MISSING, ORPHAN, Finding
from ..domain.errors import ProvisioningError
from ..domain.profiles import ClientProfile
from ..domain.records import PROVISIONED, REMOVED, CustomerRecord
from .core import MANAGED_BY, Core
from .created import wanted_callbacks
from .ports import Application, ClientGrant, DriftReport
from .step_log import LOGGER_NAME, error_reason

log = logging.getLogger(LOGGER_NAME + ".drift")


@dataclass
class ServiceState:
    """What the services hold, read once per check."""
    applications: list[Application]
    grants: dict[str, dict[str, ClientGrant]]  # audience -> client id -> grant
    secrets: dict  # lower-case name -> SecretInfo
    servers: dict  # lower-case id -> AuthorizationServerInfo
    subscriptions: dict  # lower-case id -> SubscriptionInfo


def read_state(core: Core, audiences: set[str]) -> ServiceState:
    return ServiceState(
        applications=core.identity.list_applications(),
        grants={aud: {g.client_id: g for g in core.identity.list_client_grants(aud)} for aud in sorted(audiences)},
        secrets={s.name.lower(): s for s in core.secrets.list_secrets()},
        servers={s.server_id.lower(): s for s in core.gateway.list_authorization_servers()},
        subscriptions={s.subscription_id.lower(): s for s in core.gateway.list_subscriptions()})


def settled(core: Core, rec: CustomerRecord) -> bool:
    """Not in the middle of an event: no claim standing, and provisioned or removed."""
    return rec.status in (PROVISIONED, REMOVED) and not rec.claimed_by_other("", core.now())


def check_drift(core: Core, customer_id: str | None = None) -> list[Finding]:
    if customer_id is None:
        records = {r.customer_id: r for r in core.ledger.list_customers()}
    else:
        rec, _ = core.ledger.get_customer(customer_id)
        records = {customer_id: rec} if rec is not None else {}
    audiences = {p.audience for r in records.values() if r.status == PROVISIONED
                 for p in [core.profiles.get(r.profile or "")] if p is not None}
    state = read_state(core, audiences)
    findings: list[Finding] = []
    for rec in records.values():
        if not settled(core, rec):
            continue
        if rec.status == PROVISIONED:
            profile = core.profiles.get(rec.profile or "")
            if profile is None:
                log.warning("drift customer=%s: profile %r is not configured; not checked", rec.customer_id,
                            rec.profile)
                continue
            findings.extend(_provisioned(rec, profile, state))
        else:
            findings.extend(_removed(rec, state))
    findings.extend(_foreign_applications(core, records, state, customer_id))
    return sorted(findings, key=lambda f: (f.customer_id, f.service, f.resource, f.resource_id))


def _provisioned(rec: CustomerRecord, profile: ClientProfile, state: ServiceState) -> list[Finding]:
    cid, out = rec.customer_id, []

    def add(kind, service, resource, rid, detail, repairable=True):
        out.append(Finding(cid, kind, service, resource, rid, detail, repairable))

    app = next((a for a in state.applications if a.client_id == rec.auth0_client_id), None)
    if app is None:
        add(MISSING, "auth0", "application", rec.auth0_client_id or "", "the recorded application does not exist")
    else:
        if app.grant_types is not None and set(app.grant_types) != set(profile.grant_types):
            add(DRIFT, "auth0", "application", app.client_id,
                f"grant_types {sorted(app.grant_types)} (profile: {sorted(profile.grant_types)})")
        callbacks = wanted_callbacks(profile, rec)
        if callbacks is not None and app.callbacks is not None and list(app.callbacks) != list(callbacks):
            add(DRIFT, "auth0", "application", app.client_id, f"callbacks {list(app.callbacks)} (wanted: "
                                                              f"{list(callbacks)})")
        if app.is_first_party is not None and app.is_first_party != profile.first_party:
            add(DRIFT, "auth0", "application", app.client_id,
                f"is_first_party={app.is_first_party} (profile: {profile.first_party}); fixed at creation: remove "
                "and create the customer to change it", repairable=False)
        grant = state.grants.get(profile.audience, {}).get(app.client_id)
        if grant is None:
            add(MISSING, "auth0", "client_grant", f"{app.client_id} -> {profile.audience}",
                "no grant to the profile's audience")
        elif set(grant.scopes) != set(wanted := profile.scopes_for(rec.plan)):
            add(DRIFT, "auth0", "client_grant", grant.grant_id,
                f"scopes {sorted(grant.scopes)} (profile and plan: {sorted(wanted)})")
    if profile.confidential:
        name = naming.secret_name(cid)
        secret = state.secrets.get(name.lower())
        if secret is None or not secret.enabled:
            add(MISSING, "keyvault", "secret", name, "disabled" if secret else "no such secret")
        elif app is not None and secret.tags.get("client_id") != app.client_id:
            add(DRIFT, "keyvault", "secret", name, f"tagged for client {secret.tags.get('client_id')!r}, not "
                                                  f"{app.client_id!r}")
    if profile.wants_authorization_server:
        sid = naming.authorization_server_id(cid)
        server = state.servers.get(sid.lower())
        if server is None:
            add(MISSING, "apim", "authorization_server", sid, "no such entry")
        elif app is not None and server.client_id != app.client_id:
            add(DRIFT, "apim", "authorization_server", sid, f"client {server.client_id!r}, not {app.client_id!r}")
    sub_id = naming.subscription_id(cid)
    sub = state.subscriptions.get(sub_id.lower())
    if sub is None:
        add(MISSING, "apim", "subscription", sub_id, "no such subscription")
    else:
        if sub.state != "active":
            add(DRIFT, "apim", "subscription", sub_id, f"state {sub.state} (wanted: active)")
        if sub.product_id != profile.apim_product:
            add(DRIFT, "apim", "subscription", sub_id, f"product {sub.product_id!r} (profile: "
                                                       f"{profile.apim_product!r})")
        if app is not None and sub.display_name != app.client_id:
            # The gateway binds the subscription's keys to the client its display name names: any other name
            # refuses the customer's own calls (or, worse, admits another client's tokens).
            add(DRIFT, "apim", "subscription", sub_id, f"bound to client {sub.display_name!r}, not "
                                                       f"{app.client_id!r}")
    return out


def _removed(rec: CustomerRecord, state: ServiceState) -> list[Finding]:
    cid, out = rec.customer_id, []
    name = naming.secret_name(cid)
    if name.lower() in state.secrets:
        out.append(Finding(cid, LEFTOVER, "keyvault", "secret", name, "the customer is removed"))
    sid = naming.authorization_server_id(cid)
    if sid.lower() in state.servers:
        out.append(Finding(cid, LEFTOVER, "apim", "authorization_server", sid, "the customer is removed"))
    sub_id = naming.subscription_id(cid)
    if sub_id.lower() in state.subscriptions:
        out.append(Finding(cid, LEFTOVER, "apim", "subscription", sub_id, "the customer is removed"))
    return out


def _foreign_applications(core: Core, records: dict[str, CustomerRecord], state: ServiceState,
                          only: str | None) -> list[Finding]:
    """Applications marked as ours that the ledger does not record: a removed customer's (leftover), an unknown
    customer's or a second one of a provisioned customer (orphan). In-flight customers are skipped."""
    out = []
    for app in state.applications:
        if app.client_metadata.get("managed_by") != MANAGED_BY:
            continue
        cid = app.client_metadata.get("customer_id", "")
        if only is not None and cid != only:
            continue
        rec = records.get(cid)
        if rec is not None and app.client_id == rec.auth0_client_id:
            continue
        if rec is not None and not settled(core, rec):
            continue
        if not cid:
            # No customer to take a claim on, so no use case can delete it safely: an operator decides.
            out.append(Finding(cid, ORPHAN, "auth0", "application", app.client_id,
                               "marked as managed by this app but without a customer_id: delete it by hand if it "
                               "is not someone's", repairable=False))
            continue
        if rec is not None and rec.status == REMOVED:
            out.append(Finding(cid, LEFTOVER, "auth0", "application", app.client_id, "the customer is removed"))
        else:
            why = ("no ledger row for this customer" if rec is None
                   else f"the ledger records {rec.auth0_client_id!r} for this customer")
            out.append(Finding(cid, ORPHAN, "auth0", "application", app.client_id, why))
    return out


@dataclass
class ReconcileResult:
    findings: list[Finding]
    repaired: dict[str, str] = field(default_factory=dict)  # customer -> outcome
    failed: dict[str, str] = field(default_factory=dict)  # customer -> reason
    repair: bool = False
    rotations_requested: int = 0  # secrets past their profile's max_secret_age_days, asked to be rotated


def reconcile(service, report: DriftReport, *, repair: bool = False,
              customer_id: str | None = None) -> ReconcileResult:
    """Check, report every finding (the one place findings leave), then repair when asked: each customer with a
    repairable finding once, through ``service.repair``. A failed repair is logged and left to the next run."""
    findings = check_drift(service.core, customer_id)
    for finding in findings:
        report.report(finding)
    result = ReconcileResult(findings=findings, repair=repair)
    if not repair:
        return result
    for cid in dict.fromkeys(f.customer_id for f in findings if f.repairable):
        try:
            outcome = service.repair(cid)
            result.repaired[cid] = outcome.result
        except ProvisioningError as exc:
            result.failed[cid] = error_reason(exc)
            log.warning("drift repair customer=%s failed: %s", cid, result.failed[cid])
    return result
