"""An application that exists brought to what the event (or, for a repair, the ledger row) says, in place: its
marker, name, grant types, callbacks and plan; for a repair also the grant's scopes, and our other applications of
the customer deleted (never one another customer's row records)."""
from __future__ import annotations

import logging

from ..domain.profiles import ClientProfile
from .adoption import audience_of
from .core import MANAGED_BY, Attempt, Core
from .ownership import not_recorded_elsewhere
from .ports import Application, ApplicationUpdate
from .removed import delete_application


def wanted_callbacks(profile: ClientProfile, rec) -> tuple[str, ...] | None:
    """The callbacks the application should have; None when unknown (a row from before they were recorded)."""
    if profile.redirect_uris == "none":
        return ()
    return rec.redirect_uri_list


def application_created_by_app(app: Application, customer_id: str) -> bool:
    """The app made it (its description says so): an adopted application keeps the name it was given by hand."""
    return bool(app.description and app.description.startswith(f"Customer {customer_id} ("))


def application_changes(core: Core, a: Attempt, profile: ClientProfile, app: Application) -> dict:
    """What differs between the application and the event (a repair's is made from the ledger row): the marker
    (whose it is: the ledger's say), the name of an application the app made, grant types, callbacks, the plan."""
    ev = a.event
    callbacks = wanted_callbacks(profile, a.record)
    grant_types = tuple(profile.grant_types)
    changes: dict = {}
    marker = {"customer_id": a.customer_id, "managed_by": MANAGED_BY, "profile": profile.name}
    meta = {k: v for k, v in marker.items() if app.client_metadata.get(k) != v}
    if app.client_metadata.get("plan") != getattr(ev, "plan", None):
        meta["plan"] = getattr(ev, "plan", None)  # None removes the key
    if meta:
        changes["client_metadata"] = meta
    name = core.options.application_name_prefix + (getattr(ev, "display_name", None) or "")
    if getattr(ev, "display_name", None) and application_created_by_app(app, a.customer_id) and app.name != name:
        changes["name"] = name
    if app.grant_types is not None and set(app.grant_types) != set(grant_types):
        changes["grant_types"] = grant_types
    if callbacks is not None and app.callbacks is not None and list(app.callbacks) != list(callbacks):
        changes["callbacks"] = callbacks
    return changes


def converge_application(core: Core, a: Attempt, profile: ClientProfile, app: Application) -> None:
    """The application back to the event, in place (a newer customer.created renames it like everything else; a
    repair brings it back to the ledger row). The first-party flag is fixed at creation: a change there is reported
    by the drift check, never repaired by replacing the application (its client id is what the customer holds)."""
    changes = application_changes(core, a, profile, app)
    if app.is_first_party is not None and app.is_first_party != profile.first_party:
        a.log.emit("auth0.update_application", "not_in_place", level=logging.WARNING,
                   detail=f"client_id={app.client_id}: is_first_party={app.is_first_party} is fixed at creation; "
                          "remove and create the customer to change it")
    if not changes:
        return
    core.fence(a, "auth0.update_application")
    with a.log.step("auth0.update_application") as s:
        s.detail = f"client_id={app.client_id} fields={','.join(sorted(changes))}"
        s.outcome = "ok" if core.identity.update_application(app.client_id, ApplicationUpdate(**changes)) else "gone"


def remove_strays(core: Core, a: Attempt, profile: ClientProfile, keep: str) -> None:
    """Applications of ours for this customer other than the recorded one (orphans): deleted, grant first. One that
    another customer's ledger row records is that customer's, whatever its marker says: never deleted here."""
    with a.log.step("auth0.find_applications") as s:
        strays = [x for x in core.identity.find_applications(a.customer_id)
                  if x.client_metadata.get("managed_by") == MANAGED_BY and x.client_id != keep]
        s.outcome = "found" if strays else "none"
        s.detail = f"count={len(strays)}"
    for x in not_recorded_elsewhere(core, a, strays):
        delete_application(core, a, x.client_id, audience_of(core, x, profile))


def converge_grant(core: Core, a: Attempt, profile: ClientProfile, client_id: str) -> str | None:
    """The grant's id, its scopes set back to the profile's when they drifted; None when there is no grant."""
    with a.log.step("auth0.list_client_grants") as s:
        grant = next((g for g in core.identity.list_client_grants(profile.audience) if g.client_id == client_id),
                     None)
        s.outcome = "found" if grant else "none"
    if grant is None:
        return None
    scopes = profile.scopes_for(getattr(a.event, "plan", None))
    if set(grant.scopes) != set(scopes):
        core.fence(a, "auth0.update_client_grant")
        with a.log.step("auth0.update_client_grant") as s:
            s.detail = f"id={grant.grant_id}"
            s.outcome = "ok" if core.identity.update_client_grant(grant.grant_id, tuple(scopes)) else "gone"
    return grant.grant_id
