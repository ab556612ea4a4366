"""Whose a resource is, before the app writes or deletes it.

The ledger is the authority: what a customer's row records is that customer's. Below it, the markers the services
keep on a resource say whom the app wrote it for: a Key Vault secret's ``customer_id`` tag, an API Management
authorization server's description, an Auth0 application's ``client_metadata.customer_id``. A write or delete by a
name the customer's own row does not record first reads that marker, and a resource marked for another customer is
never touched: a write is refused (permanently: nothing a retry changes), a delete skipped and logged.

API Management subscriptions carry no marker the app can set (their owner is an APIM user, and the app makes none),
so for them the ledger and the naming scheme's bound (``shared/domain/naming.py``) are the whole guard.
"""
from __future__ import annotations

import logging
import re
from typing import Iterable

from ..domain.errors import PermanentError
from .core import MANAGED_BY, Attempt, Core

SERVER_DESCRIPTION = "Auth0 application of customer {customer_id} (profile {profile}), managed by " + MANAGED_BY
_SERVER_OWNER = re.compile(r"^Auth0 application of customer (\S+) \(profile ")
#: the Key Vault tag that names the customer a secret was written for
SECRET_OWNER_TAG = "customer_id"


def server_owner(description: str | None) -> str | None:
    """The customer an authorization server entry was written for (its description), or None (an entry made by hand)."""
    found = _SERVER_OWNER.match(description or "")
    return found.group(1) if found else None


def foreign_owner(owner: str | None, customer_id: str) -> str | None:
    """``owner`` when it names a customer other than ``customer_id``; None when the resource may be this one's."""
    return owner if owner and owner != customer_id else None


def refusal(kind: str, name: str, owner: str) -> PermanentError:
    return PermanentError(f"{kind} {name} is marked for customer {owner!r}, not this one: it is not overwritten (the "
                          "ledger records whose it is; see docs/RUNBOOK.md, Drift)", service="provisioning",
                          operation="ownership")


def check_secret(core: Core, a: Attempt, name: str) -> str | None:
    """Before a write by ``name``: refuse a secret tagged for another customer. Returns the foreign owner for a
    caller that skips instead (a delete), else None."""
    with a.log.step("keyvault.get_secret_properties") as s:
        found = core.secrets.get_secret_properties(name)
        owner = foreign_owner(found.tags.get(SECRET_OWNER_TAG) if found else None, a.customer_id)
        s.outcome = "foreign" if owner else ("found" if found else "none")
        s.detail = f"name={name} (owner check)"
    return owner


def check_server(core: Core, a: Attempt, server_id: str) -> str | None:
    """As :func:`check_secret`, for an API Management authorization server entry."""
    with a.log.step("apim.get_authorization_server") as s:
        found = core.gateway.get_authorization_server(server_id)
        owner = foreign_owner(server_owner(found.description) if found else None, a.customer_id)
        s.outcome = "foreign" if owner else ("found" if found else "none")
        s.detail = f"id={server_id} (owner check)"
    return owner


def skip_foreign(a: Attempt, step: str, kind: str, name: str, owner: str) -> None:
    a.log.emit(step, "foreign", level=logging.WARNING,
               detail=f"{kind} {name} is marked for customer {owner!r}: left alone")


def not_recorded_elsewhere(core: Core, a: Attempt, apps: list) -> list:
    """``apps`` (found by their marker) without those another customer's ledger row records: the ledger says whose
    an application is, and a marker can be edited by anyone with dashboard access. The ones left out are logged."""
    owners = recorded_elsewhere(core, a.customer_id, [x.client_id for x in apps])
    for client_id, owner in owners.items():
        a.log.emit("auth0.find_applications", "recorded_elsewhere", level=logging.WARNING,
                   detail=f"client_id={client_id} is marked for this customer but the ledger records it for "
                          f"customer {owner!r}: left alone")
    return [x for x in apps if x.client_id not in owners]


def recorded_elsewhere(core: Core, customer_id: str, client_ids: Iterable[str]) -> dict[str, str]:
    """(client id -> the customer whose ledger row records it) for those of ``client_ids`` another customer's row
    records. Read only when there is something to ask about: it lists the ledger's customers."""
    wanted = set(client_ids)
    if not wanted:
        return {}
    return {r.auth0_client_id: r.customer_id for r in core.ledger.list_customers()
            if r.auth0_client_id in wanted and r.customer_id != customer_id}
