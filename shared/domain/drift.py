"""What the drift reconciliation finds: one :class:`Finding` per resource that differs from the ledger and profile.

Kinds:

- ``missing``: a provisioned customer lacks a resource it should have (deleted in the portal, expired...);
- ``leftover``: a removed customer still has a resource;
- ``orphan``: an application marked ``managed_by`` this app that no ledger row records;
- ``drift``: the resource exists but differs from the profile or the ledger (grant types, callbacks, first-party flag,
  grant scopes, names, subscription state or product, the entry's client, an application's marker), or the ledger row
  itself is left in the middle of a change (service ``ledger``: an event that did not finish, a rotation whose new
  secret did not reach Key Vault and API Management).

A finding holds ids, names and settings only, never a secret, so it can go to logs and events as it is. Its detail is
clipped once, here, to :data:`DETAIL_MAX` characters: the table, ``opstool drift --json``, the log line and the
``customer.drift-detected`` event all show the same text.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

MISSING = "missing"
LEFTOVER = "leftover"
ORPHAN = "orphan"
DRIFT = "drift"
#: the service of a finding about the ledger row itself
LEDGER = "ledger"
#: the longest detail a finding carries anywhere (the result event's schema allows 1024)
DETAIL_MAX = 1024
ELLIPSIS = "\u2026"


def clip_detail(text: str) -> str:
    """The one clipping rule for a finding's detail: at most DETAIL_MAX characters, an ellipsis where it was cut."""
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + ELLIPSIS


@dataclass(frozen=True)
class Finding:
    customer_id: str
    kind: str  # MISSING | LEFTOVER | ORPHAN | DRIFT
    service: str  # auth0 | keyvault | apim | ledger
    resource: str  # application | client_grant | secret | authorization_server | subscription
    resource_id: str
    detail: str
    #: False when a repair cannot fix it in place (the first-party flag is fixed at an application's creation)
    repairable: bool = True

    def __post_init__(self):
        object.__setattr__(self, "detail", clip_detail(self.detail))

    def as_dict(self) -> dict:
        return asdict(self)

    def log_line(self) -> str:
        return (f"drift customer={self.customer_id} kind={self.kind} service={self.service} "
                f"resource={self.resource} id={self.resource_id} detail={self.detail}"
                + ("" if self.repairable else " repairable=no"))
