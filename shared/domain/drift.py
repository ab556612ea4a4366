"""What the drift reconciliation finds: one :class:`Finding` per resource that differs from the ledger and profile.

Kinds:

- ``missing``: a provisioned customer lacks a resource it should have (deleted in the portal, expired...);
- ``leftover``: a removed customer still has a resource;
- ``orphan``: an application marked ``managed_by`` this app that no ledger row records;
- ``drift``: the resource exists but differs from the profile (grant types, callbacks, first-party flag, grant
  scopes, subscription state or product, the entry's client).

A finding holds ids, names and settings only, never a secret, so it can go to logs and events as it is.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

MISSING = "missing"
LEFTOVER = "leftover"
ORPHAN = "orphan"
DRIFT = "drift"


@dataclass(frozen=True)
class Finding:
    customer_id: str
    kind: str  # MISSING | LEFTOVER | ORPHAN | DRIFT
    service: str  # auth0 | keyvault | apim
    resource: str  # application | client_grant | secret | authorization_server | subscription
    resource_id: str
    detail: str
    #: False when a repair cannot fix it in place (the first-party flag is fixed at an application's creation)
    repairable: bool = True

    def as_dict(self) -> dict:
        return asdict(self)

    def log_line(self) -> str:
        return (f"drift customer={self.customer_id} kind={self.kind} service={self.service} "
                f"resource={self.resource} id={self.resource_id} detail={self.detail}"
                + ("" if self.repairable else " repairable=no"))
