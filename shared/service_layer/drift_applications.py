"""Applications marked as the app's that no ledger row records: orphans and leftovers.

The ledger is the authority on whose an application is. An application whose client id any row records is that
row's customer's, whatever its ``client_metadata`` says: it is checked with that customer (a marker naming someone
else is a finding there, repaired by restoring the marker) and never reported here, so no repair ever deletes it or
gives it to the customer the marker names. Only the marker of an application no row records says whose it was, and
only a marker that is a valid customer id can be acted on: any other (``"x y"``, 200 characters, ``/``) is reported
as not repairable, under no customer, so that its ``customer.drift-detected`` event can still be written.
"""
from __future__ import annotations

from ..domain.drift import LEFTOVER, ORPHAN, Finding
from ..domain.events import CUSTOMER_ID
from ..domain.records import REMOVED, CustomerRecord
from .core import MANAGED_BY
from .ports import Application

#: how much of a marker that is no customer id a finding shows
MARKER_SHOWN = 80


def foreign_applications(apps: list[Application], records: dict[str, CustomerRecord], *, only: str | None,
                         in_flight) -> list[Finding]:
    """``records``: every row of the ledger (the ownership of a client id is any row's business); ``in_flight(rec)``
    says a row is in the middle of an event, whose applications are left to it."""
    recorded = {r.auth0_client_id for r in records.values() if r.auth0_client_id}
    out = []
    for app in apps:
        if app.client_id in recorded or app.client_metadata.get("managed_by") != MANAGED_BY:
            continue
        cid = app.client_metadata.get("customer_id", "")
        if cid and not CUSTOMER_ID.fullmatch(cid):
            if only is None:
                out.append(_unrepairable(app, f"marked for customer {_shown(cid)}, which is not a customer id (1-64 "
                                              "of A-Z a-z 0-9 . _ -): no customer to claim, so no repair; delete it "
                                              "by hand if it is not someone's"))
            continue
        if only is not None and cid != only:
            continue
        if not cid:
            # No customer to take a claim on, so no use case can delete it safely: an operator decides.
            out.append(_unrepairable(app, "marked as managed by this app but without a customer_id: delete it by hand "
                                          "if it is not someone's"))
            continue
        rec = records.get(cid)
        if rec is not None and in_flight(rec):
            continue
        if rec is not None and rec.status == REMOVED:
            out.append(Finding(cid, LEFTOVER, "auth0", "application", app.client_id, "the customer is removed"))
        else:
            why = ("no ledger row for this customer" if rec is None
                   else f"the ledger records {rec.auth0_client_id!r} for this customer")
            out.append(Finding(cid, ORPHAN, "auth0", "application", app.client_id, why))
    return out


def _unrepairable(app: Application, detail: str) -> Finding:
    return Finding("", ORPHAN, "auth0", "application", app.client_id, detail, repairable=False)


def _shown(marker: str) -> str:
    shown = repr(marker[:MARKER_SHOWN])
    return shown + (f" (+{len(marker) - MARKER_SHOWN} more characters)" if len(marker) > MARKER_SHOWN else "")
