"""``customer.created``: give the customer its Auth0 application, grant, secret and API Management entries.

The order and its reasons are in docs/DESIGN.md. What makes the create safe under at-least-once delivery:
the intent to create an Auth0 application is recorded *before* the create (Auth0 generates the id), so a later
attempt that finds an intent without an id looks the application up instead of creating a second one; every other
resource has a name derived from the customer id and is written with an idempotent PUT.
Secrets pass through here (Auth0 -> Key Vault, Auth0 -> API Management) but are never logged, recorded or put into
an error message.
"""
from __future__ import annotations

from ..domain import results
from ..domain.errors import (ClaimLost, InvalidEvent, PermanentError, ProvisioningError, TransientError,
                             UnknownProfile)
from ..domain.events import CustomerCreated
from ..domain.profiles import ClientProfile
from ..domain.records import APPLIED, CLAIMED_ONLY, PROVISIONED, REMOVED, Resources
from . import resource_names
from .adoption import adopt_application, adopt_existing
from .capacity import release_unused_capacity, reserve_capacity
from .convergence import converge_application, converge_grant, remove_strays
from .core import MANAGED_BY, SKIPPED, Attempt, Core, Outcome, clip
from .limits import (APIM_SERVER_NAME_MAX, APIM_SUBSCRIPTION_NAME_MAX, AUTH0_DESCRIPTION_MAX,
                     AUTH0_METADATA_MAX_KEYS, AUTH0_METADATA_MAX_VALUE, SECRET_CONTENT_TYPE)
from .ownership import SERVER_DESCRIPTION, check_server, foreign_owner, refusal, server_owner
from .ports import Application, ApplicationSpec, AuthorizationServerSpec
from .secret_steps import store_secret

__all__ = ["APIM_SUBSCRIPTION_NAME_MAX", "SECRET_CONTENT_TYPE", "apply_created", "get_grant", "profile_for",
           "profile_for_name", "set_authorization_server", "set_subscription", "store_secret"]


def apply_created(core: Core, a: Attempt) -> Outcome:
    ev: CustomerCreated = a.event  # type: ignore[assignment]
    core.read(a)
    if a.repair:
        return _repair(core, a)
    try:
        profile, rejection = profile_for(core, ev), None
    except (UnknownProfile, InvalidEvent) as exc:
        profile, rejection = None, exc
    done = core.duplicate_or_stale(a, still_rejected=rejection is not None)
    if done:
        return done
    if rejection is not None:
        raise rejection
    assert profile is not None
    rec = a.record
    if rec and rec.status != REMOVED and rec.auth0_client_id and rec.profile and rec.profile != profile.name:
        # The Auth0 application's kind (first party, app type) is fixed at creation.
        raise PermanentError(f"customer is provisioned with profile {rec.profile!r}; a created event cannot "
                             f"change it to {profile.name!r}: send customer.removed first",
                             service="provisioning", operation="profile")
    core.check_not_busy(a)
    # A second, newer created (or one arriving while another's attempt is pending) says everything again: the
    # name, callbacks and plan land everywhere, the application and its grant included (docs/DESIGN.md).
    a.reapply = bool(rec and rec.status != REMOVED and rec.auth0_client_id
                     and (rec.status == PROVISIONED or rec.pending_event_id != ev.event_id))
    prior_intent = rec.auth0_create_intent if rec and rec.create_pending else None
    a.intent_unsent = prior_intent is None
    return _claim_and_provision(core, a, profile, lambda: core.claim(a, "provisioning", profile=profile),
                                prior_intent)


def _repair(core: Core, a: Attempt) -> Outcome:
    """Bring a provisioned customer back to its profile and recorded event: the same steps as a creation, each
    skipped when the service already holds what it would write, plus the in-place updates a creation never needs.
    The claim and the ETag-checked writes make it safe beside the customer's own events."""
    rec = a.record
    if rec is None or rec.status not in (PROVISIONED, *CLAIMED_ONLY) or \
            rec.claimed_by_other(core.worker_id, core.now()):
        return Outcome(SKIPPED, a.customer_id, a.event_id, rec.status if rec else "",
                       "no longer provisioned, or busy: left to its own events")
    profile = core.profiles.get(rec.profile or "")
    if profile is None:
        raise UnknownProfile(rec.profile or "", list(core.profiles))
    core.check_not_busy(a)
    return _claim_and_provision(core, a, profile, lambda: core.claim(a, PROVISIONED), None)


def _claim_and_provision(core: Core, a: Attempt, profile: ClientProfile, claim, prior_intent: str | None) -> Outcome:
    """The claim, beside the reservation of an API Management slot when the customer has no authorization server
    yet, then the provisioning steps; a permanent failure gives an unused slot back."""
    rec = a.record
    tasks = [claim]
    if profile.wants_authorization_server and not (rec and rec.apim_authorization_server_id):
        tasks.append(lambda: reserve_capacity(core, a, profile))
    core.run(tasks)
    try:
        return _provision(core, a, profile, prior_intent)
    except PermanentError:
        release_unused_capacity(core, a)
        raise


def _provision(core: Core, a: Attempt, profile: ClientProfile, prior_intent: str | None) -> Outcome:
    ev: CustomerCreated = a.event  # type: ignore[assignment]
    # The Auth0 application first, alone: it is the one step whose refusal (an entity limit, a validation error)
    # must leave nothing behind, and every other step needs its client id or is cheap to run beside the others.
    app, created_now = ensure_application(core, a, profile, prior_intent)
    if not created_now and not ev.existing_client_id:  # an adopted application keeps what it was given by hand
        core.run([lambda: converge_application(core, a, profile, app)]
                 + ([lambda: remove_strays(core, a, profile, app.client_id)] if a.repair else []))
    _, grant_id, secret_version, server_id, subscription = core.run([
        lambda: record_client_id(core, a, app, created_now),
        lambda: ensure_grant(core, a, profile, app.client_id, created_now),
        lambda: store_secret(core, a, profile, app) if profile.confidential else None,
        lambda: set_authorization_server(core, a, profile, app) if profile.wants_authorization_server else None,
        lambda: set_subscription(core, a, profile, app.client_id),
    ])
    resources = Resources(
        auth0_client_id=app.client_id, auth0_client_grant_id=grant_id,
        keyvault_secret_name=resource_names.secret_name(a.record, ev.customer_id) if profile.confidential else None,
        keyvault_secret_version=secret_version, apim_authorization_server_id=server_id,
        apim_subscription_id=subscription)
    now = core.now()
    event_id, event_type, event_time = core.applied_event(a)
    # A drift repair reports its finding itself (customer.drift-detected): it sends no customer.provisioned.
    result = None if a.repair else results.provisioned(
        customer_id=ev.customer_id, event_id=ev.event_id, event_type=ev.type, event_time=ev.time, now=now,
        profile=profile.name, display_name=ev.display_name, plan=ev.plan, client_id=app.client_id,
        grant_id=grant_id, secret_uri=results.secret_uri(core.options.keyvault_url, resources.keyvault_secret_name),
        secret_version=secret_version, authorization_server_id=server_id, subscription_id=subscription)
    core.commit(a, a.record.provisioned(event_id, event_type, event_time, profile=profile.name,
                                        display_name=ev.display_name, resources=resources, now=now, plan=ev.plan,
                                        rotation_carried=a.rotation_carried),
                result=result, reason="drift repair" if a.repair else None)
    detail = "created application" if created_now else "application existed"
    return Outcome(APPLIED, ev.customer_id, ev.event_id, PROVISIONED, f"client_id={app.client_id} ({detail})")


def profile_for_name(core: Core, name: str) -> ClientProfile:
    profile = core.profiles.get(name)
    if profile is None:
        raise UnknownProfile(name, list(core.profiles))
    return profile


def profile_for(core: Core, ev: CustomerCreated) -> ClientProfile:
    profile = profile_for_name(core, ev.profile)
    if profile.redirect_uris == "required" and not ev.redirect_uris:
        raise InvalidEvent("data.redirectUris", f"is required by profile {profile.name!r}: send 1 to 20 https URLs")
    check_redirect_uris(profile, ev.redirect_uris)
    return profile


def check_redirect_uris(profile: ClientProfile, uris) -> None:
    """Refuse callbacks on the user's own machine or network for a profile that may not have them."""
    refused = profile.local_redirect_refusal(uris or ()) if profile.redirect_uris != "none" else None
    if refused:
        raise InvalidEvent(f"data.redirectUris[{refused[0]}]", f"{refused[1]} (profile {profile.name!r})")



def ensure_application(core: Core, a: Attempt, profile: ClientProfile, prior_intent: str | None
                       ) -> tuple[Application, bool]:
    rec = a.record
    existing = a.event.existing_client_id  # type: ignore[attr-defined]
    if existing:
        if rec.auth0_client_id and rec.auth0_client_id != existing:
            raise PermanentError(f"data.existingClientId names application {existing}, but the customer already has "
                                 f"application {rec.auth0_client_id}: send customer.removed first, or leave "
                                 "existingClientId out", service="provisioning", operation="adopt_application")
        # Recorded or not, the same steps: read it, check it may be ours, mark it (a crash between the mark and the
        # ledger write, or the reverse, is finished by the next delivery).
        return adopt_existing(core, a, profile, existing), False
    if rec.auth0_client_id:
        with a.log.step("auth0.get_application") as s:
            app = core.identity.get_application(rec.auth0_client_id, with_secret=profile.confidential)
            s.outcome = "found" if app else "gone"
        if app is not None:
            return app, False
        # Deleted behind our back, or by a removal that never finished: record the intent before creating another
        # one, as for a first create.
        a.log.emit("auth0.get_application", "gone", detail=f"recorded client_id={rec.auth0_client_id} no longer exists")
        core.update_record(a, lambda r: r.application_gone(a.event_id), "ledger.record_intent")
        prior_intent = a.event_id
    if prior_intent:
        app = adopt_application(core, a, profile)
        if app is not None:
            return app, False
    spec = application_spec(core, a.event, profile)  # type: ignore[arg-type]
    core.fence(a, "auth0.create_application")
    with a.log.step("auth0.create_application") as s:
        a.intent_unsent = False  # from here the create may have happened, whatever the answer
        try:
            app = core.identity.create_application(spec)
        except ProvisioningError as exc:
            # A 429 or a validation error is an answer to a request Auth0 did not apply. A 5xx, a timeout or a
            # dropped connection may hide a create that happened: only those leave the intent standing.
            a.create_refused = exc.status is not None and (exc.status == 429 or 400 <= exc.status < 500
                                                           and exc.status != 408)
            raise
        s.detail = f"client_id={app.client_id}"
    a.client_id = app.client_id
    if profile.confidential and not app.client_secret:
        raise PermanentError("Auth0 created a confidential application without a client secret",
                             service="auth0", operation="create_application")
    return app, True



def application_spec(core: Core, ev: CustomerCreated, profile: ClientProfile) -> ApplicationSpec:
    metadata = {"customer_id": ev.customer_id, "profile": profile.name, "managed_by": MANAGED_BY}
    if ev.plan:
        metadata["plan"] = ev.plan
    if len(metadata) > AUTH0_METADATA_MAX_KEYS or any(len(v) > AUTH0_METADATA_MAX_VALUE for v in metadata.values()):
        raise PermanentError("client_metadata exceeds Auth0's limits (10 keys, 255 characters per value)",
                             service="auth0", operation="create_application")
    callbacks = ev.redirect_uris if profile.redirect_uris != "none" else ()
    return ApplicationSpec(
        name=core.options.application_name_prefix + ev.display_name, app_type=profile.app_type,
        grant_types=profile.grant_types, token_endpoint_auth_method=profile.token_endpoint_auth_method,
        is_first_party=profile.first_party, token_lifetime=profile.token_lifetime, client_metadata=metadata,
        callbacks=tuple(callbacks),
        description=clip(f"Customer {ev.customer_id} ({profile.name}), managed by {MANAGED_BY}", AUTH0_DESCRIPTION_MAX))


def record_client_id(core: Core, a: Attempt, app: Application, created_now: bool) -> None:
    if a.record.auth0_client_id == app.client_id:
        return
    try:
        core.update_record(a, lambda r: r.with_client_id(app.client_id), "ledger.record_client_id")
    except ClaimLost:
        if created_now:
            withdraw_application(core, a, app.client_id)
        raise


def withdraw_application(core: Core, a: Attempt, client_id: str) -> None:
    """The claim was lost while this attempt created an application (a stall between the fence and the create):
    the new holder did not record it, so it is an orphan unless someone adopted it meanwhile. Delete it then."""
    with a.log.step("ledger.get_customer") as s:
        fresh, _ = core.ledger.get_customer(a.customer_id)
        adopted = bool(fresh and fresh.auth0_client_id == client_id)
        s.outcome = "adopted" if adopted else "not_recorded"
    if adopted:
        return
    with a.log.step("auth0.delete_application") as s:
        s.outcome = "withdrawn" if core.identity.delete_application(client_id) else "gone"
        s.detail = f"client_id={client_id}: created under a claim that was lost"


def ensure_grant(core: Core, a: Attempt, profile: ClientProfile, client_id: str, created_now: bool) -> str:
    if not created_now and a.repair:
        grant_id = converge_grant(core, a, profile, client_id)
        if grant_id:
            return grant_id
    elif not created_now:  # the grant may exist already: look before creating (a create would answer 409)
        grant_id = get_grant(core, a, client_id, profile.audience)
        if grant_id and a.reapply:  # the event's plan may give other scopes than the one before it
            core.fence(a, "auth0.update_client_grant")
            with a.log.step("auth0.update_client_grant") as s:
                s.detail = f"id={grant_id}"
                scopes = profile.scopes_for(getattr(a.event, "plan", None))
                s.outcome = "ok" if core.identity.update_client_grant(grant_id, tuple(scopes)) else "gone"
        if grant_id:
            return grant_id
    core.fence(a, "auth0.create_client_grant")
    with a.log.step("auth0.create_client_grant") as s:
        grant_id = core.identity.create_client_grant(client_id, profile.audience,
                                                     profile.scopes_for(getattr(a.event, "plan", None)))
        s.outcome = "ok" if grant_id else "exists"
        s.detail = f"client_id={client_id}" + (f" id={grant_id}" if grant_id else "")
    if grant_id is None:
        grant_id = get_grant(core, a, client_id, profile.audience)
        if grant_id is None:
            raise TransientError("the client grant was reported as existing but was not found",
                                 service="auth0", operation="get_client_grant")
    return grant_id


def get_grant(core: Core, a: Attempt, client_id: str, audience: str) -> str | None:
    with a.log.step("auth0.get_client_grant") as s:
        grant_id = core.identity.get_client_grant(client_id, audience)
        s.outcome = "found" if grant_id else "none"
    return grant_id


def set_authorization_server(core: Core, a: Attempt, profile: ClientProfile, app: Application, *,
                             display_name: str | None = None, scopes: tuple[str, ...] | None = None,
                             server_id: str | None = None) -> str:
    display_name = display_name or a.event.display_name  # type: ignore[attr-defined]
    scopes = scopes if scopes is not None else profile.scopes_for(getattr(a.event, "plan", None))
    if profile.confidential and not app.client_secret:
        raise PermanentError("Auth0 returned no client secret for a confidential application",
                             service="auth0", operation="get_application")
    domain = core.options.auth0_domain
    server_id = server_id or resource_names.authorization_server_id(a.record, a.customer_id)
    recorded = (a.record.apim_authorization_server_id or "").lower() == server_id.lower()
    spec = AuthorizationServerSpec(
        display_name=clip(display_name, APIM_SERVER_NAME_MAX),
        authorization_endpoint=f"https://{domain}/authorize",
        token_endpoint=f"https://{domain}/oauth/token",
        client_registration_endpoint=core.options.apim_client_registration_endpoint or f"https://{domain}/",
        client_id=app.client_id,
        client_secret=app.client_secret if profile.confidential else None,
        grant_types=profile.apim_grant_types,
        default_scope=" ".join(scopes),
        description=SERVER_DESCRIPTION.format(customer_id=a.customer_id, profile=profile.name))
    if a.repair:
        with a.log.step("apim.get_authorization_server") as s:
            found = core.gateway.get_authorization_server(server_id)
            s.outcome = "found" if found else "none"
        owner = None if recorded or found is None else foreign_owner(server_owner(found.description), a.customer_id)
        if owner:
            raise refusal("API Management authorization server", server_id, owner)
        # An unfinished rotation's secret (Auth0's now) is written whatever the entry shows: its secret is not read.
        if found is not None and found.client_id == app.client_id and not a.record.rotation_pending and \
                set(found.grant_types) == set(spec.grant_types) and found.default_scope == spec.default_scope and \
                found.display_name == spec.display_name:
            return server_id
    elif not recorded and (owner := check_server(core, a, server_id)):
        raise refusal("API Management authorization server", server_id, owner)
    core.fence(a, "apim.set_authorization_server")
    with a.log.step("apim.set_authorization_server") as s:
        s.detail = f"id={server_id}"
        a.server_written = True  # from here it may exist, whatever the answer
        core.gateway.set_authorization_server(server_id, spec)
    return server_id


def set_subscription(core: Core, a: Attempt, profile: ClientProfile, client_id: str) -> str:
    """The customer's subscription to its product, named after the customer and displayed as its Auth0 client id:
    the gateway policy (infra/policies/api.xml) takes the subscription's keys only with that client's tokens."""
    sub_id = resource_names.subscription_id(a.record, a.customer_id)
    if a.repair:
        with a.log.step("apim.get_subscription") as s:
            found = core.gateway.get_subscription(sub_id)
            s.outcome = found.state if found else "none"
        if found is not None and found.state == "active" and found.product_id == profile.apim_product \
                and found.display_name == client_id:
            return sub_id
    core.fence(a, "apim.set_subscription")
    with a.log.step("apim.set_subscription") as s:
        s.detail = f"id={sub_id} product={profile.apim_product}"
        core.gateway.set_subscription(sub_id, display_name=clip(client_id, APIM_SUBSCRIPTION_NAME_MAX),
                                      product_id=profile.apim_product)
    return sub_id
