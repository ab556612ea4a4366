"""The customer's client secret into Key Vault: a new version of the secret the ledger records (or the derived name
for a customer it records none for), tagged with the customer, client and profile; never over a secret marked for
another customer (``ownership``); a name soft-deleted by an earlier removal is recovered or purged first."""
from __future__ import annotations

from ..domain.errors import PermanentError, TransientError
from ..domain.profiles import ClientProfile
from . import resource_names
from .core import Attempt, Core
from .limits import SECRET_CONTENT_TYPE
from .ownership import SECRET_OWNER_TAG, check_secret, foreign_owner, refusal
from .ports import Application, SecretDeletedButRecoverable

#: Key Vault tags of a rotated secret version (beside customer_id, client_id and profile)
TAG_ROTATED_AT = "rotated_at"
TAG_ROTATION_EVENT = "rotation_event_id"


def _rotation_to_carry(core: Core, a: Attempt, name: str, app: Application) -> str | None:
    """A rotation did not finish: Auth0's current secret must be Key Vault's latest version. Its version when it
    is already (the rotation got that far); None when a new version must be written (``rotation_carried``)."""
    with a.log.step("keyvault.get_secret") as s:
        stored = core.secrets.get_secret(name)
        s.outcome = "found" if stored else "none"
        s.detail = f"name={name} (rotation {a.record.rotation_pending})"
    if stored is not None and stored.value == app.client_secret:
        a.rotation_carried = a.rotation_carried or False
        return stored.version
    a.rotation_carried = True
    return None


def store_secret(core: Core, a: Attempt, profile: ClientProfile, app: Application,
                 extra_tags: dict[str, str] | None = None, name: str | None = None) -> str:
    if not app.client_secret:
        raise PermanentError("Auth0 returned no client secret for a confidential application",
                             service="auth0", operation="get_application")
    name = name or resource_names.secret_name(a.record, a.customer_id)
    tags = {SECRET_OWNER_TAG: a.customer_id, "client_id": app.client_id, "profile": profile.name,
            **(extra_tags or {})}
    recorded = (a.record.keyvault_secret_name or "").lower() == name.lower()
    if a.repair:
        with a.log.step("keyvault.get_secret_properties") as s:
            found = core.secrets.get_secret_properties(name)
            s.outcome = "found" if found else "none"
        owner = None if recorded or found is None else foreign_owner(found.tags.get(SECRET_OWNER_TAG), a.customer_id)
        if owner:
            raise refusal("Key Vault secret", name, owner)
        if a.record.rotation_pending:
            carried = _rotation_to_carry(core, a, name, app)
            if carried is not None:
                return carried
            tags.update({TAG_ROTATED_AT: core.now().isoformat().replace("+00:00", "Z"),
                         TAG_ROTATION_EVENT: a.record.rotation_pending})
        elif found is not None and found.enabled and found.tags.get("client_id") == app.client_id:
            version = a.record.keyvault_secret_version if recorded else None
            return version or core.secrets.get_secret_version(name) or ""
    elif not recorded and (owner := check_secret(core, a, name)):
        raise refusal("Key Vault secret", name, owner)
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
