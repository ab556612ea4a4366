"""Repair only: what a creation never needs, since it makes everything itself. The application's grant types and
callbacks and the grant's scopes are set back in place, and our other applications of the customer are deleted."""
from __future__ import annotations

import logging

from ..domain.profiles import ClientProfile
from .adoption import audience_of
from .core import MANAGED_BY, Attempt, Core
from .ports import Application, ApplicationUpdate
from .removed import delete_application


def wanted_callbacks(profile: ClientProfile, rec) -> tuple[str, ...] | None:
    """The callbacks the application should have; None when unknown (a row from before they were recorded)."""
    if profile.redirect_uris == "none":
        return ()
    return rec.redirect_uri_list


def converge_application(core: Core, a: Attempt, profile: ClientProfile, app: Application) -> None:
    """Grant types and callbacks back to the profile and the recorded event, in place. The first-party flag is
    fixed at creation: a change there is reported by the drift check, never repaired by replacing the application
    (its client id is what the customer holds)."""
    callbacks = wanted_callbacks(profile, a.record)
    grant_types = tuple(profile.grant_types)
    changes = {}
    if app.grant_types is not None and set(app.grant_types) != set(grant_types):
        changes["grant_types"] = grant_types
    if callbacks is not None and app.callbacks is not None and list(app.callbacks) != list(callbacks):
        changes["callbacks"] = callbacks
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
    """Applications of ours for this customer other than the recorded one (orphans): deleted, grant first."""
    with a.log.step("auth0.find_applications") as s:
        strays = [x for x in core.identity.find_applications(a.customer_id)
                  if x.client_metadata.get("managed_by") == MANAGED_BY and x.client_id != keep]
        s.outcome = "found" if strays else "none"
        s.detail = f"count={len(strays)}"
    for x in strays:
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
