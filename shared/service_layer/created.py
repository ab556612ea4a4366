"""``customer.created``: give the customer its Auth0 application, grant, secret and API Management entries.

The order and its reasons are in docs/DESIGN.md. What makes the create safe under at-least-once delivery:
the intent to create an Auth0 application is recorded *before* the create (Auth0 generates the id), so a later
attempt that finds an intent without an id looks the application up instead of creating a second one; every other
resource has a name derived from the customer id and is written with an idempotent PUT.
Secrets pass through here (Auth0 -> Key Vault, Auth0 -> API Management) but are never logged, recorded or put into
an error message.
"""
from __future__ import annotations

import logging

from ..domain import naming, results
from ..domain.errors import (ClaimLost, InvalidEvent, PermanentError, ProvisioningError, TransientError,
                             UnknownProfile)
from ..domain.events import CustomerCreated
from ..domain.profiles import ClientProfile
from ..domain.records import APPLIED, PROVISIONED, REMOVED, Resources
from .core import MANAGED_BY, SKIPPED, Attempt, Core, Outcome, clip
from .ports import (Application, ApplicationSpec, ApplicationUpdate, AuthorizationServerSpec,
                    SecretDeletedButRecoverable)
from .removed import APIM_SERVER_POOL, delete_application

SECRET_CONTENT_TYPE = "application/vnd.auth0.client-secret"
# Auth0: client_metadata holds at most 10 keys with string values of at most 255 characters; descriptions 140.
AUTH0_METADATA_MAX_KEYS = 10
AUTH0_METADATA_MAX_VALUE = 255
AUTH0_DESCRIPTION_MAX = 140
# API Management: authorization server display names 1-50 characters, subscription display names 1-100.
APIM_SERVER_NAME_MAX = 50
APIM_SUBSCRIPTION_NAME_MAX = 100


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
    prior_intent = rec.auth0_create_intent if rec and rec.create_pending else None
    a.intent_unsent = prior_intent is None
    return _claim_and_provision(core, a, profile, lambda: core.claim(a, "provisioning", profile=profile),
                                prior_intent)


def _repair(core: Core, a: Attempt) -> Outcome:
    """Bring a provisioned customer back to its profile and recorded event: the same steps as a creation, each
    skipped when the service already holds what it would write, plus the in-place updates a creation never needs.
    The claim and the ETag-checked writes make it safe beside the customer's own events."""
    rec = a.record
    if rec is None or rec.status != PROVISIONED or rec.claimed_by_other(core.worker_id, core.now()):
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
    if a.repair and not created_now:
        core.run([lambda: converge_application(core, a, profile, app),
                  lambda: remove_strays(core, a, profile, app.client_id)])
    _, grant_id, secret_version, server_id, subscription = core.run([
        lambda: record_client_id(core, a, app, created_now),
        lambda: ensure_grant(core, a, profile, app.client_id, created_now),
        lambda: store_secret(core, a, profile, app) if profile.confidential else None,
        lambda: set_authorization_server(core, a, profile, app) if profile.wants_authorization_server else None,
        lambda: set_subscription(core, a, profile, app.client_id),
    ])
    resources = Resources(
        auth0_client_id=app.client_id, auth0_client_grant_id=grant_id,
        keyvault_secret_name=naming.secret_name(ev.customer_id) if profile.confidential else None,
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
                                        display_name=ev.display_name, resources=resources, now=now, plan=ev.plan),
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
    return profile


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
    server_id = naming.authorization_server_id(a.customer_id)
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


def adopt_application(core: Core, a: Attempt, profile: ClientProfile) -> Application | None:
    """An earlier attempt recorded the intent to create but not the id: find what it created, if anything."""
    with a.log.step("auth0.find_applications") as s:
        found = core.identity.find_applications(a.customer_id)
        ours = [app for app in found if app.client_metadata.get("managed_by") == MANAGED_BY]
        s.outcome = "found" if ours else "none"
        s.detail = f"count={len(ours)}"
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


def store_secret(core: Core, a: Attempt, profile: ClientProfile, app: Application,
                 extra_tags: dict[str, str] | None = None, name: str | None = None) -> str:
    if not app.client_secret:
        raise PermanentError("Auth0 returned no client secret for a confidential application",
                             service="auth0", operation="get_application")
    name = name or naming.secret_name(a.customer_id)
    tags = {"customer_id": a.customer_id, "client_id": app.client_id, "profile": profile.name, **(extra_tags or {})}
    if a.repair:
        with a.log.step("keyvault.get_secret_properties") as s:
            found = core.secrets.get_secret_properties(name)
            s.outcome = "found" if found else "none"
        if found is not None and found.enabled and found.tags.get("client_id") == app.client_id:
            version = a.record.keyvault_secret_version if a.record.keyvault_secret_name == name else None
            return version or core.secrets.get_secret_version(name) or ""
    version = _set_secret(core, a, name, app.client_secret, tags)
    if version is not None:
        return version
    # The name is soft-deleted (a removal, then this re-provisioning): free it, then set again.
    how = "recover"
    core.fence(a, "keyvault.recover_or_purge")
    if core.options.purge_deleted_secrets:
        try:
            with a.log.step("keyvault.purge_deleted_secret"):
                core.secrets.purge_deleted_secret(name)
            how = "purge"
        except PermanentError:
            pass  # purge protection (or no purge permission): recovering is the way that remains
    if how == "recover":
        with a.log.step("keyvault.recover_deleted_secret") as s:
            s.outcome = "ok" if core.secrets.recover_deleted_secret(name) else "none"
    version = _set_secret(core, a, name, app.client_secret, tags)
    if version is None:
        raise TransientError(f"secret {name} is still soft-deleted after {how}", service="keyvault",
                             operation="set_secret")
    return version


def _set_secret(core: Core, a: Attempt, name: str, value: str, tags: dict[str, str]) -> str | None:
    core.fence(a, "keyvault.set_secret")
    with a.log.step("keyvault.set_secret") as s:
        s.detail = f"name={name}"
        try:
            return core.secrets.set_secret(name, value, content_type=SECRET_CONTENT_TYPE, tags=tags)
        except SecretDeletedButRecoverable:
            s.outcome = "deleted_but_recoverable"
            return None


def set_authorization_server(core: Core, a: Attempt, profile: ClientProfile, app: Application, *,
                             display_name: str | None = None, scopes: tuple[str, ...] | None = None,
                             server_id: str | None = None) -> str:
    display_name = display_name or a.event.display_name  # type: ignore[attr-defined]
    scopes = scopes if scopes is not None else profile.scopes_for(getattr(a.event, "plan", None))
    if profile.confidential and not app.client_secret:
        raise PermanentError("Auth0 returned no client secret for a confidential application",
                             service="auth0", operation="get_application")
    domain = core.options.auth0_domain
    server_id = server_id or naming.authorization_server_id(a.customer_id)
    spec = AuthorizationServerSpec(
        display_name=clip(display_name, APIM_SERVER_NAME_MAX),
        authorization_endpoint=f"https://{domain}/authorize",
        token_endpoint=f"https://{domain}/oauth/token",
        client_registration_endpoint=core.options.apim_client_registration_endpoint or f"https://{domain}/",
        client_id=app.client_id,
        client_secret=app.client_secret if profile.confidential else None,
        grant_types=profile.apim_grant_types,
        default_scope=" ".join(scopes),
        description=f"Auth0 application of customer {a.customer_id} (profile {profile.name}), managed by "
                    f"{MANAGED_BY}")
    if a.repair:
        with a.log.step("apim.get_authorization_server") as s:
            found = core.gateway.get_authorization_server(server_id)
            s.outcome = "found" if found else "none"
        if found is not None and found.client_id == app.client_id and \
                set(found.grant_types) == set(spec.grant_types) and found.default_scope == spec.default_scope:
            return server_id
    core.fence(a, "apim.set_authorization_server")
    with a.log.step("apim.set_authorization_server") as s:
        s.detail = f"id={server_id}"
        a.server_written = True  # from here it may exist, whatever the answer
        core.gateway.set_authorization_server(server_id, spec)
    return server_id


def set_subscription(core: Core, a: Attempt, profile: ClientProfile, client_id: str) -> str:
    """The customer's subscription to its product, named after the customer and displayed as its Auth0 client id:
    the gateway policy (infra/policies/api.xml) takes the subscription's keys only with that client's tokens."""
    sub_id = naming.subscription_id(a.customer_id)
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


# ---- repair only: what a creation never needs, since it makes everything itself -----------------------------------
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
