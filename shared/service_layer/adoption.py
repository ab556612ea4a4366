"""Applications the created flow takes instead of creating one: what an earlier attempt created but did not record
(found by its ``client_metadata``), and an application made by hand that an event names (``existingClientId``)."""
from __future__ import annotations

import logging

from ..domain.errors import PermanentError
from ..domain.profiles import ClientProfile
from .core import MANAGED_BY, Attempt, Core
from .limits import AUTH0_METADATA_MAX_KEYS
from .ownership import not_recorded_elsewhere, recorded_elsewhere
from .ports import Application
from .removed import delete_application


def adopt_application(core: Core, a: Attempt, profile: ClientProfile) -> Application | None:
    """An earlier attempt recorded the intent to create but not the id: find what it created, if anything."""
    with a.log.step("auth0.find_applications") as s:
        found = core.identity.find_applications(a.customer_id)
        ours = [app for app in found if app.client_metadata.get("managed_by") == MANAGED_BY]
        s.outcome = "found" if ours else "none"
        s.detail = f"count={len(ours)}"
    ours = not_recorded_elsewhere(core, a, ours)  # another customer's, whatever its marker says
    if len(found) > len(ours):
        a.log.emit("auth0.find_applications", "ignored", level=logging.WARNING,
                   detail=f"{len(found) - len(ours)} application(s) carry this customer_id but not "
                          f"managed_by={MANAGED_BY}: left alone")
    if not ours:
        return None
    keep, extras = ours[0], ours[1:]
    other = keep.client_metadata.get("profile")
    if other and other != profile.name:
        raise PermanentError(f"an application with profile {other!r} (client_id={keep.client_id}) exists from an "
                             f"earlier attempt; a created event cannot change it to {profile.name!r}: send "
                             "customer.removed first", service="provisioning", operation="profile")
    a.client_id = keep.client_id
    if extras:
        # Only this app writes managed_by, so these are our own duplicates (a create whose answer was lost, then
        # repeated). This must not happen; say so loudly.
        a.log.emit("auth0.adopt_application", "duplicates", level=logging.ERROR,
                   detail=f"keeping client_id={keep.client_id}, deleting duplicates "
                          f"{','.join(x.client_id for x in extras)}")
        core.fence(a, "auth0.delete_application")
        core.run([lambda x=x: delete_application(core, a, x.client_id, audience_of(core, x, profile))
                  for x in extras])
    a.log.emit("auth0.adopt_application", "ok", detail=f"client_id={keep.client_id}")
    if profile.confidential and not keep.client_secret:
        with a.log.step("auth0.get_application") as s:
            full = core.identity.get_application(keep.client_id, with_secret=True)
            s.outcome = "found" if full else "gone"
        if full is None:
            a.client_id = None
            return None
        keep = full
    return keep


#: Auth0 application types that are public clients (no secret); the others are confidential
PUBLIC_APP_TYPES = ("spa", "native")


def adopt_existing(core: Core, a: Attempt, profile: ClientProfile, client_id: str) -> Application:
    """Bring an application made by hand under the app: mark it as this customer's in ``client_metadata`` and leave
    every other property as it is. Refused (permanently, nothing written) when it does not exist, is marked for
    another customer or profile, or is public where the profile is confidential (or the reverse)."""
    def refuse(why: str) -> PermanentError:
        return PermanentError(f"data.existingClientId: application {client_id} {why}", service="provisioning",
                              operation="adopt_application")

    with a.log.step("auth0.get_application") as s:
        app = core.identity.get_application(client_id, with_secret=profile.confidential)
        s.outcome = "found" if app else "none"
        s.detail = f"client_id={client_id} (to adopt)"
    if app is None:
        raise refuse("does not exist in Auth0")
    meta = app.client_metadata
    owner = meta.get("customer_id")
    if owner and owner != a.customer_id:
        raise refuse(f"is marked for customer {owner!r}: an application serves one customer")
    recorded = recorded_elsewhere(core, a.customer_id, [client_id]).get(client_id)
    if recorded:
        raise refuse(f"is customer {recorded!r}'s in the ledger: an application serves one customer")
    if meta.get("managed_by") == MANAGED_BY and meta.get("profile") not in (None, profile.name):
        raise refuse(f"has profile {meta.get('profile')!r}; a created event cannot change it to {profile.name!r}")
    if app.app_type and (app.app_type in PUBLIC_APP_TYPES) == profile.confidential:
        kind = "a public client" if profile.confidential else "a confidential client"
        raise refuse(f"is {kind} (app_type {app.app_type!r}) and profile {profile.name!r} is not: choose the "
                     "profile that matches it")
    if profile.confidential and not app.client_secret:
        raise refuse("has no client secret for a confidential profile")
    marker = {"customer_id": a.customer_id, "profile": profile.name, "managed_by": MANAGED_BY}
    if any(meta.get(k) != v for k, v in marker.items()):
        if len({**meta, **marker}) > AUTH0_METADATA_MAX_KEYS:
            raise refuse(f"has client_metadata with too many keys to add the app's marker (Auth0 allows "
                         f"{AUTH0_METADATA_MAX_KEYS})")
        core.fence(a, "auth0.set_application_metadata")
        with a.log.step("auth0.set_application_metadata") as s:
            marked = core.identity.set_application_metadata(client_id, marker)
            s.outcome = "marked" if marked else "gone"
            s.detail = f"client_id={client_id} customer_id={a.customer_id}"
        if marked is None:
            raise refuse("was deleted while it was being adopted")
    else:
        a.log.emit("auth0.adopt_application", "marked", detail=f"client_id={client_id}: marked already")
    a.client_id = client_id
    return app


def audience_of(core: Core, app: Application, default: ClientProfile) -> str:
    other = core.profiles.get(app.client_metadata.get("profile", ""))
    return (other or default).audience
