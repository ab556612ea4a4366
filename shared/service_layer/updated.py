"""``customer.updated``: change a provisioned customer's display name, redirect URIs, plan or profile in place.

Only what the event carries changes; the rest keeps its value (the ledger records the profile, display name and
plan). The changes land on the existing resources: the Auth0 application (PATCH: name, callbacks, app type, grant
types, token lifetime, metadata), its client grant (PATCH: the scopes of the profile and plan), the API Management
subscription (PATCH: its product and name, keys and state kept) and authorization server entry (PATCH: name,
grant types, scope; the client id and secret stay). No new application is ever made and no secret passes here.

All or nothing: the application is updated first and alone (Auth0's validation is what refuses most), then the
rest side by side. A permanent failure after some steps landed puts them back to the ledger row's values (the row
is written only once everything landed) before the failure is recorded; the customer is ``provisioned`` again, never
left ``updating`` without a claim, and what a restore could not put back is a drift finding that a repair finishes.

A change that cannot be made in place is refused whole, as permanent, before anything is touched: a confidential
client made public or the reverse (the secret, its Key Vault copy and the APIM entry's credentials differ), the
first-party flag (fixed at creation), adding or dropping the APIM entry, or another API audience. The way there is
customer.removed then customer.created.

Ordering, idempotency and validation are the other events': the ledger's stale guard (an update older than the last
applied event is stale; a created sent earlier but delivered after an update is stale too), the audit row
(a redelivery is a duplicate), the claim and fencing around each write. An update of a customer the ledger has not
seen provisioned yet is transient (the create may simply be delivered later); of a removed one, permanent.
"""
from __future__ import annotations

import logging

from ..domain import naming, results
from ..domain.errors import (ChangeNotInPlace, InvalidEvent, NotProvisioned, PermanentError, TransientError,
                             UnknownProfile)
from ..domain.events import CustomerUpdated
from ..domain.profiles import ClientProfile
from ..domain.records import APPLIED, PROVISIONED, REMOVED, UPDATING
from .convergence import wanted_callbacks
from .core import Attempt, Core, Outcome, clip
from .created import (APIM_SUBSCRIPTION_NAME_MAX, check_redirect_uris, get_grant, profile_for_name,
                      set_authorization_server, set_subscription)
from .ports import ApplicationUpdate

#: the data fields of a customer.updated, as reported in ``customer.updated``'s ``changed``
FIELDS = (("display_name", "displayName"), ("profile", "profile"), ("plan", "plan"),
          ("redirect_uris", "redirectUris"), ("contact_email", "contactEmail"))


def apply_updated(core: Core, a: Attempt) -> Outcome:
    ev: CustomerUpdated = a.event  # type: ignore[assignment]
    core.read(a)
    rejection = None
    new_profile = None
    if ev.profile is not None:
        try:
            new_profile = profile_for_name(core, ev.profile)
        except UnknownProfile as exc:
            rejection = exc
    done = core.duplicate_or_stale(a, still_rejected=rejection is not None)
    if done:
        return done
    if rejection is not None:
        raise rejection
    rec = a.record
    if rec is None:
        raise TransientError("no customer.created has been applied to this customer yet; the update is retried, so "
                             "a creation delivered after it is applied first", service="provisioning",
                             operation="update")
    if rec.status == REMOVED:
        raise NotProvisioned(f"the customer was removed (event {rec.last_event_id}); an update cannot bring it "
                             "back: send customer.created", service="provisioning", operation="update")
    core.check_not_busy(a)
    if rec.status not in (PROVISIONED, UPDATING) or not rec.auth0_client_id:
        raise TransientError(f"the customer is not provisioned yet (status {rec.status}); the update is retried "
                             "once its pending event is applied", service="provisioning", operation="update")
    current = core.profiles.get(rec.profile or "")
    if current is None:
        raise PermanentError(f"the customer's profile {rec.profile!r} is no longer configured; it cannot be updated "
                             "in place", service="provisioning", operation="profile")
    target = new_profile or current
    refusal = change_refusal(current, target)
    if refusal:
        raise ChangeNotInPlace(refusal, service="provisioning", operation="profile")
    callbacks = _callbacks(ev, current, target)
    display_name = ev.display_name or rec.display_name or ev.customer_id
    plan = ev.plan if ev.plan is not None else rec.plan
    scopes = target.scopes_for(plan)
    core.claim(a, UPDATING)
    client_id = rec.auth0_client_id
    landed: list[str] = []
    try:
        # The application alone first: Auth0's validation (a name, a callback) is what refuses an update most
        # often, and a refusal there leaves nothing changed anywhere.
        _tracked(landed, "application", lambda: update_application(core, a, target, client_id, display_name, plan,
                                                                   callbacks))()
        grant_id, _, subscription_id = core.run([
            _tracked(landed, "grant", lambda: update_grant(core, a, target, client_id, scopes)),
            _tracked(landed, "authorization_server",
                     lambda: update_authorization_server(core, a, target, client_id, display_name, scopes)
                     if target.wants_authorization_server else None),
            _tracked(landed, "subscription", lambda: update_subscription(core, a, target, client_id)),
        ])
    except PermanentError:
        # All or nothing: what landed goes back to the ledger's values (its row still holds them), then the failure
        # is recorded (status provisioned again). What a restore cannot put back, the drift check reports.
        restore(core, a, current, rec, client_id, landed, callbacks_changed=callbacks is not None)
        raise
    now = core.now()
    changed = tuple(name for attr, name in FIELDS if getattr(ev, attr) is not None)
    result = results.updated(customer_id=ev.customer_id, event_id=ev.event_id, event_type=ev.type,
                             event_time=ev.time, now=now, profile=target.name, display_name=display_name, plan=plan,
                             client_id=client_id, scopes=scopes, changed=changed, apim_product=target.apim_product,
                             subscription_id=subscription_id)
    core.commit(a, a.record.updated(ev.event_id, ev.type, ev.time, profile=target.name, display_name=display_name,
                                    plan=plan, grant_id=grant_id, now=now, redirect_uris=callbacks), result=result)
    return Outcome(APPLIED, ev.customer_id, ev.event_id, PROVISIONED,
                   f"client_id={client_id} updated: {', '.join(changed)}")


def _tracked(landed: list[str], name: str, step):
    """``step``, noting in ``landed`` that it may have changed something: it succeeded, or failed without an
    answer that says nothing was applied (a permanent refusal is such an answer)."""
    def run():
        try:
            result = step()
        except PermanentError:
            raise
        except Exception:
            landed.append(name)
            raise
        landed.append(name)
        return result
    return run


def restore(core: Core, a: Attempt, profile: ClientProfile, rec, client_id: str, landed: list[str], *,
            callbacks_changed: bool) -> None:
    """Put back what an update that failed permanently changed: its landed steps again, with the ledger row's
    (unchanged) profile, name, plan and callbacks. Best effort: a restore step that fails is logged, and the drift
    check finds what it left."""
    display_name = rec.display_name or a.customer_id
    scopes = profile.scopes_for(rec.plan)
    callbacks = wanted_callbacks(profile, rec) if callbacks_changed else None
    steps = {"application": lambda: update_application(core, a, profile, client_id, display_name, rec.plan,
                                                       callbacks),
             "grant": lambda: update_grant(core, a, profile, client_id, scopes),
             "authorization_server": lambda: update_authorization_server(core, a, profile, client_id, display_name,
                                                                         scopes),
             "subscription": lambda: update_subscription(core, a, profile, client_id)}
    for name in [n for n in steps if n in landed]:
        try:
            steps[name]()
        except Exception as exc:  # noqa: BLE001 - the update's own failure is what the trigger must see
            a.log.emit(f"restore.{name}", "failed", level=logging.WARNING,
                       detail=f"{type(exc).__name__}: not restored; the drift check reports it")
    a.log.emit("restore", "done", detail=f"restored {','.join(n for n in steps if n in landed) or 'nothing'}")


def change_refusal(current: ClientProfile, target: ClientProfile) -> str | None:
    """Why the customer cannot move from ``current`` to ``target`` in place, or None when it can."""
    if current.name == target.name:
        return None
    prefix = f"profile {current.name!r} cannot be changed to {target.name!r} in place"
    how = "send customer.removed, then customer.created with the new profile"
    if current.confidential != target.confidential:
        kinds = {True: "a confidential client (with a secret)", False: "a public client (PKCE, no secret)"}
        return (f"{prefix}: {current.name} is {kinds[current.confidential]} and {target.name} "
                f"{kinds[target.confidential]}; the secret, its Key Vault copy and the API Management entry's "
                f"credentials would change kind: {how}")
    if current.first_party != target.first_party:
        return f"{prefix}: an Auth0 application's first-party flag is fixed when it is created: {how}"
    if current.wants_authorization_server != target.wants_authorization_server:
        return f"{prefix}: one has an API Management authorization server entry and the other none: {how}"
    if current.audience != target.audience:
        return f"{prefix}: the client grant's API audience differs ({current.audience} -> {target.audience}): {how}"
    return None


def _callbacks(ev: CustomerUpdated, current: ClientProfile, target: ClientProfile) -> tuple[str, ...] | None:
    """The callbacks to set, or None to leave them as they are."""
    if target.redirect_uris == "none":
        return () if current.redirect_uris != "none" else None
    if ev.redirect_uris is not None:
        check_redirect_uris(target, ev.redirect_uris)
        return ev.redirect_uris
    if target.redirect_uris == "required" and current.redirect_uris == "none":
        raise InvalidEvent("data.redirectUris", f"is required by profile {target.name!r}: send 1 to 20 https URLs")
    return None


def update_application(core: Core, a: Attempt, profile: ClientProfile, client_id: str, display_name: str,
                       plan: str | None, callbacks: tuple[str, ...] | None) -> None:
    update = ApplicationUpdate(
        name=core.options.application_name_prefix + display_name, app_type=profile.app_type,
        grant_types=profile.grant_types, token_endpoint_auth_method=profile.token_endpoint_auth_method,
        token_lifetime=profile.token_lifetime, client_metadata={"profile": profile.name, "plan": plan},
        callbacks=callbacks)
    core.fence(a, "auth0.update_application")
    with a.log.step("auth0.update_application") as s:
        found = core.identity.update_application(client_id, update)
        s.outcome = "ok" if found else "gone"
        s.detail = f"client_id={client_id}"
    if not found:
        raise PermanentError(f"the customer's Auth0 application {client_id} no longer exists (deleted outside the "
                             "app): a customer.created re-creates it", service="auth0", operation="update_application")


def update_grant(core: Core, a: Attempt, profile: ClientProfile, client_id: str, scopes: tuple[str, ...]) -> str:
    grant_id = a.record.auth0_client_grant_id or get_grant(core, a, client_id, profile.audience)
    if grant_id:
        core.fence(a, "auth0.update_client_grant")
        with a.log.step("auth0.update_client_grant") as s:
            found = core.identity.update_client_grant(grant_id, scopes)
            s.outcome = "ok" if found else "gone"
            s.detail = f"id={grant_id} scopes={' '.join(scopes)}"
        if found:
            return grant_id
    # No grant (deleted outside the app): make the one the customer should have.
    core.fence(a, "auth0.create_client_grant")
    with a.log.step("auth0.create_client_grant") as s:
        grant_id = core.identity.create_client_grant(client_id, profile.audience, scopes)
        s.outcome = "ok" if grant_id else "exists"
    if grant_id is None:
        grant_id = get_grant(core, a, client_id, profile.audience)
        if grant_id is None:
            raise TransientError("the client grant was reported as existing but was not found",
                                 service="auth0", operation="get_client_grant")
        core.fence(a, "auth0.update_client_grant")
        with a.log.step("auth0.update_client_grant"):
            core.identity.update_client_grant(grant_id, scopes)
    return grant_id


def update_authorization_server(core: Core, a: Attempt, profile: ClientProfile, client_id: str, display_name: str,
                                scopes: tuple[str, ...]) -> str:
    server_id = a.record.apim_authorization_server_id or naming.authorization_server_id(a.customer_id)
    core.fence(a, "apim.update_authorization_server")
    with a.log.step("apim.update_authorization_server") as s:
        found = core.gateway.update_authorization_server(
            server_id, display_name=clip(display_name, 50), grant_types=profile.apim_grant_types,
            default_scope=" ".join(scopes))
        s.outcome = "ok" if found else "gone"
        s.detail = f"id={server_id}"
    if not found:
        # Deleted outside the app: write it again, which needs the client's secret (read, never recorded).
        with a.log.step("auth0.get_application") as s:
            app = core.identity.get_application(client_id, with_secret=profile.confidential)
            s.outcome = "found" if app else "gone"
        if app is None:
            raise PermanentError(f"the customer's Auth0 application {client_id} no longer exists",
                                 service="auth0", operation="get_application")
        set_authorization_server(core, a, profile, app, display_name=display_name, scopes=scopes)
    return server_id


def update_subscription(core: Core, a: Attempt, profile: ClientProfile, client_id: str) -> str:
    sub_id = a.record.apim_subscription_id or naming.subscription_id(a.customer_id)
    core.fence(a, "apim.update_subscription")
    with a.log.step("apim.update_subscription") as s:
        # The display name is the customer's client id (the gateway's binding), written again on each update.
        found = core.gateway.update_subscription(sub_id, display_name=clip(client_id, APIM_SUBSCRIPTION_NAME_MAX),
                                                 product_id=profile.apim_product)
        s.outcome = "ok" if found else "gone"
        s.detail = f"id={sub_id} product={profile.apim_product}"
    if not found:  # deleted outside the app: the customer should have one
        return set_subscription(core, a, profile, client_id)
    return sub_id


__all__ = ["apply_updated", "change_refusal"]
