"""Which customers' client secrets are due for rotation under their profile's ``max_secret_age_days``.

Pure: the reconciliation timer reads the ledger's customers and calls :func:`secrets_due_for_rotation`, then sends
one ``customer.credentials-rotation-requested`` event per customer due, with the id :func:`rotation_request_id`
gives. That id is derived from the customer and the secret's issue time, so a timer that runs again before the
rotation was applied asks again under the same id (a duplicate the queue or the ledger drops), and the next
generation of the secret gets a new one.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Iterable, Mapping

from .profiles import ClientProfile
from .records import PROVISIONED, CustomerRecord


@dataclass(frozen=True)
class DueRotation:
    customer_id: str
    profile: str
    max_age_days: int
    issued_at: dt.datetime | None  # None: provisioned before the ledger kept the issue time; treated as due
    age_days: float | None


def secrets_due_for_rotation(records: Iterable[CustomerRecord], profiles: Mapping[str, ClientProfile],
                             now: dt.datetime) -> list[DueRotation]:
    """Provisioned customers whose profile sets ``max_secret_age_days`` and whose secret is at least that old,
    the oldest first. Customers being changed (provisioning, rotating, removing) are left to the event at hand."""
    due = []
    for rec in records:
        profile = profiles.get(rec.profile or "")
        if rec.status != PROVISIONED or profile is None or not profile.confidential or \
                profile.max_secret_age_days is None or not rec.auth0_client_id:
            continue
        issued = rec.secret_issued_at
        age = (now - issued).total_seconds() / 86400 if issued else None
        if age is None or age >= profile.max_secret_age_days:
            due.append(DueRotation(rec.customer_id, profile.name, profile.max_secret_age_days, issued,
                                   None if age is None else round(age, 2)))
    return sorted(due, key=lambda d: (d.issued_at is not None, d.issued_at or now, d.customer_id))


def rotation_request_id(customer_id: str, issued_at: dt.datetime | None) -> str:
    """The event id of the timer's request to rotate this generation of the customer's secret."""
    stamp = issued_at.astimezone(dt.timezone.utc).isoformat() if issued_at else "unknown"
    return "rotate-age-" + hashlib.sha256(f"{customer_id}\n{stamp}".encode("utf-8")).hexdigest()[:40]
