"""SecretStore over azure-keyvault-secrets 4.x (``SecretClient``).

Soft delete is always on in Key Vault: a deleted name stays reserved until recovered or purged, and setting it
answers 409 ``ObjectIsDeletedButRecoverable``, which this adapter raises as :class:`SecretDeletedButRecoverable` for
the service layer to recover or purge (``KEYVAULT_PURGE_DELETED``).
"""
from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.keyvault.secrets import SecretClient

from ..domain.errors import TransientError
from ..service_layer.ports import SecretDeletedButRecoverable, SecretInfo, SecretStore, StoredSecret
from .azure_errors import ABSENT, ShortRetryPolicy, azure_call, client_kwargs, inner_error_code

SERVICE = "keyvault"
#: the SDK's delete/recover pollers sleep 2 s between polls by default (the kwarg is the private
#: ``_polling_interval`` in 4.12); a delete that Key Vault finishes in a fraction of a second should cost that.
POLLING_INTERVAL = 0.25
#: how long delete/recover may take before we call it transient and let the next delivery look again
POLLING_TIMEOUT = 30.0


#: the secret the warm-up reads; customers' secrets are named by ``naming.secret_name`` (auth0-client-...)
WARM_UP_PROBE = "customer-provisioning-warm-up"

class KeyVaultSecretStore(SecretStore):
    """A write's answer that is lost (the connection dropped after Key Vault applied it) never makes a second
    version: the adapter reads the latest version back instead of letting the SDK repeat the PUT, so "the version
    before the latest holds the previous secret" stays true through a rotation."""

    def __init__(self, vault_url: str, credential: Any, *, ca_bundle: str | None = None, timeout: float = 30.0,
                 polling_timeout: float = POLLING_TIMEOUT, **client_options: Any):
        """``client_options`` go to the SecretClient as they are (azure-core's, e.g. ``raw_response_hook``)."""
        self.polling_timeout = polling_timeout
        self._client = SecretClient(
            vault_url, credential,
            # The challenge names the resource https://vault.azure.net; the SDK checks that it matches the vault's
            # host (*.vault.azure.net) unless told not to, which only the local stack (127.0.0.1) needs.
            verify_challenge_resource=not ca_bundle,
            retry_policy=ShortRetryPolicy(),
            **client_kwargs(ca_bundle=ca_bundle, timeout=timeout), **client_options)

    @classmethod
    def from_settings(cls, settings, credential: Any, **client_options: Any) -> "KeyVaultSecretStore":
        # A delete or recover that Key Vault has not finished within one call's timeout is left to the next attempt.
        return cls(settings.keyvault_url, credential, ca_bundle=settings.local_stack_ca_bundle,
                   timeout=settings.azure_timeout_seconds, polling_timeout=settings.azure_timeout_seconds,
                   **client_options)

    def set_secret(self, name: str, value: str, *, content_type: str, tags: dict[str, str]) -> str:
        def deleted_but_recoverable(exc: Exception) -> Exception | None:
            if isinstance(exc, ResourceExistsError) and (
                    inner_error_code(exc) == "ObjectIsDeletedButRecoverable"
                    or "ObjectIsDeletedButRecoverable" in str(getattr(exc, "message", ""))):
                return SecretDeletedButRecoverable(name)
            return None

        def put():
            # retry_read=0: azure-core repeats a PUT whose answer was lost (a read error), and a repeated PUT is a
            # second version of the same value; whether the first landed is read back below instead.
            return self._client.set_secret(name, value, content_type=content_type, tags=dict(tags), retry_read=0)

        for attempt in range(2):
            try:
                secret = azure_call(SERVICE, "set_secret", put, secrets=(value,), translate=deleted_but_recoverable)
                return secret.properties.version
            except TransientError as exc:
                if exc.status is not None or attempt:
                    raise  # answered (the service said what happened), or the second time already
                landed = self._landed(name, value, tags)
                if landed is not None:
                    return landed
        raise AssertionError("unreachable")

    def _landed(self, name: str, value: str, tags: dict[str, str]) -> str | None:
        """After a PUT without an answer: the version it made, if the latest holds its value and tags (the value is
        a fresh secret, so no other write made it); else None, and the PUT is sent once more."""
        latest = self.get_secret(name)
        if latest is not None and latest.value == value and all(latest.tags.get(k) == v for k, v in tags.items()):
            return latest.version
        return None

    def warm_up(self) -> None:
        """One read of a name the app never writes: it goes through Key Vault's authentication challenge and
        fetches the token, so that the first event's write does neither."""
        self.get_secret_properties(WARM_UP_PROBE)

    def get_secret_version(self, name: str) -> str | None:
        newest = self._newest_version(name, "get_secret_version")
        return newest.version if newest is not None else None

    def get_secret_properties(self, name: str) -> SecretInfo | None:
        newest = self._newest_version(name, "get_secret_properties")
        if newest is None:
            return None
        return SecretInfo(name=newest.name, enabled=newest.enabled is not False, tags=dict(newest.tags or {}))

    def _newest_version(self, name: str, operation: str):
        # Key Vault has no "properties of the latest version" call (GET /secrets/{name} returns the value), so list
        # the versions' properties (values never listed) and take the newest: created last, and among versions
        # created in the same second, listed last.
        versions = azure_call(SERVICE, operation,
                              lambda: list(self._client.list_properties_of_secret_versions(name)), absent_on=(404,))
        if versions is ABSENT or not versions:
            return None
        return max(enumerate(versions), key=lambda iv: (iv[1].created_on.timestamp() if iv[1].created_on else 0,
                                                        iv[0]))[1]

    def get_secret(self, name: str) -> StoredSecret | None:
        secret = azure_call(SERVICE, "get_secret", lambda: self._client.get_secret(name), absent_on=(404,))
        if secret is ABSENT:
            return None
        return StoredSecret(version=secret.properties.version, value=secret.value or "",
                            tags=dict(secret.properties.tags or {}))

    def delete_secret(self, name: str, *, wait: bool = False) -> bool:
        if wait:
            return self._long_running("delete_secret", lambda: self._client.begin_delete_secret(
                name, _polling_interval=POLLING_INTERVAL))
        # The DELETE alone: the SDK's poller sends nothing until it is waited on.
        return azure_call(SERVICE, "delete_secret", lambda: self._client.begin_delete_secret(name),
                          absent_on=(404,)) is not ABSENT

    def recover_deleted_secret(self, name: str) -> bool:
        return self._long_running("recover_deleted_secret", lambda: self._client.begin_recover_deleted_secret(
            name, _polling_interval=POLLING_INTERVAL))

    def purge_deleted_secret(self, name: str) -> bool:
        # With purge protection on: 403, permanent.
        return azure_call(SERVICE, "purge_deleted_secret", lambda: self._client.purge_deleted_secret(name),
                          absent_on=(404,)) is not ABSENT

    def list_secrets(self) -> list[SecretInfo]:
        # Properties only: Key Vault never lists values.
        return azure_call(SERVICE, "list_secrets", lambda: [
            SecretInfo(name=p.name, enabled=p.enabled is not False, tags=dict(p.tags or {}))
            for p in self._client.list_properties_of_secrets()])

    def _long_running(self, operation: str, begin) -> bool:
        """Start and wait; False when there was nothing to act on (404)."""
        def run():
            poller = begin()
            poller.wait(timeout=self.polling_timeout)
            if not poller.done():
                raise TransientError(f"not finished after {self.polling_timeout:g} s; the next attempt looks again",
                                     service=SERVICE, operation=operation)
        return azure_call(SERVICE, operation, run, absent_on=(404,)) is not ABSENT

    def close(self) -> None:
        self._client.close()
