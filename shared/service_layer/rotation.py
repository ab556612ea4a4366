"""``customer.credentials-rotation-requested``: a new client secret in Auth0, Key Vault and API Management.

Exactly one rotation per request, whatever crashes: the request's id is recorded in the ledger (with the claim, one
write) *before* Auth0 is asked to rotate. A later delivery of the same request that finds it recorded does not
rotate again: it compares what Auth0 holds now with Key Vault's latest version. Different (or tagged with this
request) means the rotation happened and its new secret is carried on to Key Vault and API Management; equal means
the crash came before the rotation, which is then done. Auth0 keeps no rotation time to ask instead.

A rotation is not part of a customer's lifecycle order: it leaves ``last_event_*`` as they are, so a removal sent
before it but delivered after it still removes. It is refused (permanently, nothing changed) for a public client,
which has no secret, and for a customer that is not provisioned.

Secrets pass from Auth0 to Key Vault and API Management here and go nowhere else (not into the ledger, the log,
an error or the outcome's facts).
"""
from __future__ import annotations

import datetime as dt

from ..domain import naming, results
from ..domain.errors import PermanentError, RotationRefused, TransientError
from ..domain.profiles import ClientProfile
from ..domain.records import APPLIED, PROVISIONED, PROVISIONING, REMOVED, REMOVING, ROTATING
from .core import Attempt, Core, Outcome
from .created import set_authorization_server
from .secret_steps import TAG_ROTATED_AT, TAG_ROTATION_EVENT, store_secret
from .ports import Application

__all__ = ["TAG_ROTATED_AT", "TAG_ROTATION_EVENT", "apply_rotation"]


def apply_rotation(core: Core, a: Attempt) -> Outcome:
    ev = a.event
    core.read(a)
    done = core.duplicate(a)
    if done:
        return done
    profile = rotatable_profile(core, a)
    core.check_not_busy(a)
    resumed = a.record.rotation_event_id == ev.event_id
    claim_rotation(core, a)
    rec = a.record
    secret_name = rec.keyvault_secret_name or naming.secret_name(a.customer_id)
    app = recover_rotation(core, a, rec.auth0_client_id, secret_name) if resumed else None
    recovered = app is not None
    if app is None:
        app = rotate(core, a, rec.auth0_client_id)
    now = core.now()
    version = store_rotated_secret(core, a, profile, app, secret_name, now)
    server_id = None
    if profile.wants_authorization_server:
        server_id = rec.apim_authorization_server_id or naming.authorization_server_id(a.customer_id)
        update_authorization_server(core, a, profile, app, server_id)
    result = results.credentials_rotated(
        customer_id=a.customer_id, event_id=ev.event_id, event_type=ev.type, event_time=ev.time, now=now,
        client_id=app.client_id, secret_uri=results.secret_uri(core.options.keyvault_url, secret_name),
        secret_version=version, authorization_server_id=server_id)
    core.commit(a, a.record.rotated(version, now), APPLIED,
                f"secret rotated{' (recovered after an interrupted attempt)' if recovered else ''}: "
                f"client_id={app.client_id} key_vault_version={version}", result=result)
    facts = rotation_facts(a, app.client_id, secret_name, version, now, server_id)
    return Outcome(APPLIED, a.customer_id, a.event_id, PROVISIONED,
                   f"client_id={app.client_id} secret rotated, key vault version {version}"
                   + (" (recovered)" if recovered else ""), facts=facts)


def rotation_facts(a: Attempt, client_id: str, secret_name: str, version: str, rotated_at: dt.datetime,
                   server_id: str | None) -> dict:
    """What the result event of a rotation reports (ids, the Key Vault version and the time; never the secret)."""
    return {"clientId": client_id, "keyVaultSecretName": secret_name, "keyVaultSecretVersion": version,
            "rotatedAt": rotated_at.isoformat().replace("+00:00", "Z"),
            "apimAuthorizationServerId": server_id}


def rotatable_profile(core: Core, a: Attempt) -> ClientProfile:
    """The customer's profile, when its secret can be rotated now; else a refusal (or a wait) that says why."""
    rec = a.record
    if rec is None or rec.status == REMOVED:
        raise RotationRefused(f"customer {a.customer_id} is not provisioned: there is no secret to rotate")
    if rec.status == REMOVING:
        raise RotationRefused(f"customer {a.customer_id} is being removed: there is no secret to rotate")
    if rec.status == PROVISIONING:
        # Its created event is still being applied (or retried): the rotation waits for it, within the budget.
        raise TransientError("the customer's creation has not finished; the rotation waits for it",
                             service="provisioning", operation="wait_for_creation")
    profile = core.profiles.get(rec.profile or "")
    if profile is None:
        raise RotationRefused(f"customer {a.customer_id} has profile {rec.profile!r}, which the configuration no "
                              "longer defines")
    if not profile.confidential:
        raise RotationRefused(f"profile {profile.name!r} is a public client (token_endpoint_auth_method none, "
                              "PKCE): it has no client secret to rotate")
    if not rec.auth0_client_id:
        raise RotationRefused(f"customer {a.customer_id} has no Auth0 application recorded")
    return profile


def claim_rotation(core: Core, a: Attempt) -> None:
    """The claim and the rotation request's id in one ETag-checked write, before anything else is called."""
    claim = a.record.rotation_claim(core.worker_id, a.event_id, core.now(),
                                    dt.timedelta(seconds=core.options.claim_ttl))
    with a.log.step("ledger.claim") as s:
        s.detail = f"status={ROTATING} rotation_event_id={a.event_id}"
        a.record = core.ledger.update_customer(claim)
    a.claimed = True


def recover_rotation(core: Core, a: Attempt, client_id: str, secret_name: str) -> Application | None:
    """An earlier delivery of this request recorded it and then failed: did Auth0 rotate? The application with
    Auth0's current secret when it did (or may have: Key Vault cannot tell), None when it surely did not."""
    with a.log.step("auth0.get_application") as s:
        app = core.identity.get_application(client_id, with_secret=True)
        s.outcome = "found" if app else "gone"
    if app is None:
        raise PermanentError(f"application {client_id} no longer exists in Auth0", service="auth0",
                             operation="get_application")
    with a.log.step("keyvault.get_secret") as s:
        stored = core.secrets.get_secret(secret_name)
        s.outcome = "found" if stored else "none"
        s.detail = f"name={secret_name}"
    if stored is not None and stored.tags.get(TAG_ROTATION_EVENT) != a.event_id and \
            stored.value == app.client_secret:
        a.log.emit("auth0.rotate_secret", "not_rotated_yet",
                   detail="Auth0 still holds the secret Key Vault holds: the earlier attempt stopped before the "
                          "rotation")
        return None
    a.log.emit("auth0.rotate_secret", "recovered",
               detail="rotated by an earlier attempt of this request: carrying Auth0's current secret on")
    return app


def rotate(core: Core, a: Attempt, client_id: str) -> Application:
    core.fence(a, "auth0.rotate_secret")
    with a.log.step("auth0.rotate_secret") as s:
        app = core.identity.rotate_secret(client_id)
        s.outcome = "ok" if app else "gone"
        s.detail = f"client_id={client_id}"
    if app is None:
        raise PermanentError(f"application {client_id} no longer exists in Auth0", service="auth0",
                             operation="rotate_secret")
    if not app.client_secret:
        raise PermanentError("Auth0 rotated the secret but returned none", service="auth0",
                             operation="rotate_secret")
    return app


def store_rotated_secret(core: Core, a: Attempt, profile: ClientProfile, app: Application, name: str,
                         now: dt.datetime) -> str:
    """A new Key Vault version, tagged with the client id, the rotation time and the request; one already written
    for this request (an earlier attempt got that far) is kept rather than versioned again."""
    with a.log.step("keyvault.get_secret") as s:
        stored = core.secrets.get_secret(name)
        s.outcome = "found" if stored else "none"
    if stored is not None and stored.tags.get(TAG_ROTATION_EVENT) == a.event_id and stored.value == app.client_secret:
        a.log.emit("keyvault.set_secret", "kept", detail=f"name={name} version={stored.version} (this request's)")
        return stored.version
    tags = {TAG_ROTATED_AT: now.isoformat().replace("+00:00", "Z"), TAG_ROTATION_EVENT: a.event_id}
    return store_secret(core, a, profile, app, tags, name=name)


def update_authorization_server(core: Core, a: Attempt, profile: ClientProfile, app: Application,
                                server_id: str) -> None:
    """Only the entry's client secret changes (a PATCH); an entry that is gone is written whole again."""
    core.fence(a, "apim.set_authorization_server_secret")
    with a.log.step("apim.set_authorization_server_secret") as s:
        found = core.gateway.set_authorization_server_secret(server_id, app.client_secret)
        s.outcome = "ok" if found else "gone"
        s.detail = f"id={server_id}"
    if not found:
        set_authorization_server(core, a, profile, app, display_name=a.record.display_name or a.customer_id,
                                 server_id=server_id)
