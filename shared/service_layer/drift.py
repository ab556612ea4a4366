"""Drift reconciliation: compare the ledger with Auth0, Key Vault and API Management, report, optionally repair.

The check reads each service once (every page of Auth0's applications and of the grants to each audience, the
vault's secret properties, APIM's entries and subscriptions) and the ledger's rows, never a secret, so its cost does
not grow with the number of calls per customer. Every row is checked whatever its status (``drift_checks``), except
one a claim holds: its own event decides it, and an application created a moment ago under a claim must not be
taken for an orphan. Applications no row records are judged by ``drift_applications``: the ledger decides whose an
application is, never its marker.

Every finding goes through ``DriftReport.report`` once, in :func:`reconcile`. A repair goes through the use cases
(``ProvisioningService.repair``: the created or removed flow in repair mode), one customer at a time, under its
claim and the adapters' pacing, so it is as idempotent and as fenced as an event.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..domain.drift import Finding
from ..domain.errors import ProvisioningError
from ..domain.records import PROVISIONING, REMOVED, REMOVING, CustomerRecord
from .core import Core
from .drift_applications import foreign_applications
from .drift_checks import ServiceState, check_provisioned, check_removed, recorded_names, status_finding
from .ports import DriftReport
from .step_log import LOGGER_NAME, error_reason

log = logging.getLogger(LOGGER_NAME + ".drift")

__all__ = ["ReconcileResult", "ServiceState", "check_drift", "read_state", "reconcile", "repair_findings"]


def read_state(core: Core, audiences: set[str], records=()) -> ServiceState:
    return ServiceState(
        applications=core.identity.list_applications(),
        grants={aud: {g.client_id: g for g in core.identity.list_client_grants(aud)} for aud in sorted(audiences)},
        secrets={s.name.lower(): s for s in core.secrets.list_secrets()},
        servers={s.server_id.lower(): s for s in core.gateway.list_authorization_servers()},
        subscriptions={s.subscription_id.lower(): s for s in core.gateway.list_subscriptions()},
        recorded_names=recorded_names(records))


def in_flight(core: Core, rec: CustomerRecord) -> bool:
    """A claim stands on the row: an event (or a repair) is changing the customer right now."""
    return rec.claimed_by_other("", core.now())


def check_drift(core: Core, customer_id: str | None = None) -> list[Finding]:
    # Every row, even for one customer: whose an application or a name is, is any row's business.
    every = {r.customer_id: r for r in core.ledger.list_customers()}
    records = every if customer_id is None else {k: v for k, v in every.items() if k == customer_id}
    audiences = {p.audience for r in every.values() if r.status != REMOVED
                 for p in [core.profiles.get(r.profile or "")] if p is not None}
    state = read_state(core, audiences, every.values())
    findings: list[Finding] = []
    for rec in records.values():
        if in_flight(core, rec):
            continue
        status = status_finding(rec)
        if status is not None:
            findings.append(status)
        if rec.status == PROVISIONING:
            continue  # what a creation that did not finish left is its event's to finish (or a removal's)
        if rec.status in (REMOVED, REMOVING):
            findings.extend(check_removed(rec, state))
            continue
        profile = core.profiles.get(rec.profile or "")
        if profile is None:
            log.warning("drift customer=%s: profile %r is not configured; not checked", rec.customer_id, rec.profile)
            continue
        findings.extend(check_provisioned(rec, profile, state, name_prefix=core.options.application_name_prefix))
    findings.extend(foreign_applications(
        state.applications, every, only=customer_id,
        in_flight=lambda rec: in_flight(core, rec) or rec.status == PROVISIONING))
    return sorted(findings, key=lambda f: (f.customer_id, f.service, f.resource, f.resource_id, f.detail))


@dataclass
class ReconcileResult:
    findings: list[Finding]
    repaired: dict[str, str] = field(default_factory=dict)  # customer -> outcome
    failed: dict[str, str] = field(default_factory=dict)  # customer -> reason
    repair: bool = False
    rotations_requested: int = 0  # secrets past their profile's max_secret_age_days, asked to be rotated

    @property
    def to_repair(self) -> list[str]:
        """The customers a repair would act on: each with a repairable finding, once."""
        return list(dict.fromkeys(f.customer_id for f in self.findings if f.repairable and f.customer_id))


def reconcile(service, report: DriftReport, *, repair: bool = False,
              customer_id: str | None = None) -> ReconcileResult:
    """Check, report every finding (the one place findings leave), then repair when asked: each customer with a
    repairable finding once, through ``service.repair``. A failed repair is logged and left to the next run."""
    findings = check_drift(service.core, customer_id)
    for finding in findings:
        report.report(finding)
    result = ReconcileResult(findings=findings)
    if repair:
        repair_findings(service, result)
    return result


def repair_findings(service, result: ReconcileResult) -> ReconcileResult:
    """Repair each customer of ``result.to_repair`` (the check's findings, reported already)."""
    result.repair = True
    for cid in result.to_repair:
        try:
            outcome = service.repair(cid)
            result.repaired[cid] = outcome.result
        except ProvisioningError as exc:
            result.failed[cid] = error_reason(exc)
            log.warning("drift repair customer=%s failed: %s", cid, result.failed[cid])
    return result
