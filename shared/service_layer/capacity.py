"""API Management's authorization-server slots: one is reserved (a ledger counter) before anything is created, and
given back when a permanent failure comes before the entry was written."""
from __future__ import annotations

from ..domain.errors import PermanentError
from ..domain.profiles import ClientProfile
from . import resource_names
from .core import Attempt, Core
from .removed import APIM_SERVER_POOL


def reserve_capacity(core: Core, a: Attempt, profile: ClientProfile) -> None:
    """Hold one of the tier's authorization-server slots before anything is created, atomically across workers
    (a ledger counter), so two customers created at once cannot both take the last one. The entries are listed
    once per deployment, to seed the counter; never per customer."""
    with a.log.step("apim.get_authorization_server_limit") as s:
        cap = core.gateway.get_authorization_server_limit()
        s.detail = f"limit={cap.limit if cap.limit is not None else 'none'} sku={cap.sku}"
    if cap.limit is None:
        return

    def seed() -> int:
        with a.log.step("apim.get_authorization_server_capacity") as s:
            used = core.gateway.get_authorization_server_capacity().used
            s.detail = f"used={used} (seeds the reservation counter)"
        return used

    with a.log.step("ledger.reserve_slot") as s:
        held = core.ledger.reserve_slot(APIM_SERVER_POOL, a.customer_id, cap.limit, seed=seed)
        s.outcome = "held" if held else "full"
    if held:
        a.reserved = True
        return
    server_id = resource_names.authorization_server_id(a.record, a.customer_id)
    with a.log.step("apim.has_authorization_server") as s:
        exists = core.gateway.has_authorization_server(server_id)
        s.outcome = "found" if exists else "none"
    if exists:  # made before reservations existed: replacing it takes no new slot
        return
    raise PermanentError(
        f"API Management tier {cap.sku} allows {cap.limit} authorization servers; all {cap.limit} are in use or "
        f"reserved: "
        f"remove unused ones or use a profile with apim_authorization_server = \"none\" instead of "
        f"{profile.name!r}", service="apim", operation="authorization_server_capacity")


def release_unused_capacity(core: Core, a: Attempt) -> None:
    """A permanent failure before this attempt wrote the authorization server gives its slot back."""
    if not a.reserved or a.server_written:
        return
    try:
        with a.log.step("ledger.release_slot"):
            core.ledger.release_slot(APIM_SERVER_POOL, a.customer_id)
    except Exception:  # noqa: BLE001 - the failure being reported matters more; a held slot is only conservative
        pass
