"""SecretStore over azure-keyvault-secrets 4.x (``SecretClient``).

Soft delete is always on in Key Vault: a deleted name stays reserved until recovered or purged, and setting it
answers 409 ``ObjectIsDeletedButRecoverable``, which this adapter raises as :class:`SecretDeletedButRecoverable` for
the service layer to recover or purge (``KEYVAULT_PURGE_DELETED``).
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from ..domain.errors import TransientError
from ..service_layer.ports import SecretDeletedButRecoverable, SecretStore
from .azure_errors import ShortRetryPolicy, classify, client_kwargs, inner_error_code

SERVICE = "keyvault"
#: the SDK's delete/recover pollers sleep 2 s between polls by default (the kwarg is the private
#: ``_polling_interval`` in 4.12); a delete that Key Vault finishes in a fraction of a second should cost that.
POLLING_INTERVAL = 0.25
#: how long delete/recover may take before we call it transient and let the next delivery look again
POLLING_TIMEOUT = 30.0


class KeyVaultSecretStore(SecretStore):
    def __init__(self, vault_url: str, credential: Any, *, ca_bundle: str | None = None, timeout: float = 30.0,
                 polling_interval: float = POLLING_INTERVAL, polling_timeout: float = POLLING_TIMEOUT,
                 client: SecretClient | None = None):
        self.polling_interval = polling_interval
        self.polling_timeout = polling_timeout
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._client = client or SecretClient(
            vault_url, credential,
            # The challenge names the resource https://vault.azure.net; the SDK checks that it matches the vault's
            # host (*.vault.azure.net) unless told not to, which only the local stack (127.0.0.1) needs.
            verify_challenge_resource=not ca_bundle,
            retry_policy=ShortRetryPolicy(),
            **client_kwargs(ca_bundle=ca_bundle, timeout=timeout))

    @classmethod
    def from_settings(cls, settings, credential: Any) -> "KeyVaultSecretStore":
        return cls(settings.keyvault_url, credential, ca_bundle=settings.local_stack_ca_bundle,
                   timeout=settings.azure_timeout_seconds)

    def _count(self, operation: str) -> None:
        with self._calls_lock:
            self.calls[operation] += 1

    def set_secret(self, name: str, value: str, *, content_type: str, tags: dict[str, str]) -> str:
        self._count("set_secret")
        try:
            secret = self._client.set_secret(name, value, content_type=content_type, tags=dict(tags))
        except ResourceExistsError as exc:
            if inner_error_code(exc) == "ObjectIsDeletedButRecoverable" or \
                    "ObjectIsDeletedButRecoverable" in str(getattr(exc, "message", "")):
                raise SecretDeletedButRecoverable(name) from None
            raise classify(exc, service=SERVICE, operation="set_secret", secrets=(value,)) from None
        except Exception as exc:
            raise classify(exc, service=SERVICE, operation="set_secret", secrets=(value,)) from None
        return secret.properties.version

    def get_secret_version(self, name: str) -> str | None:
        # Key Vault has no "properties of the latest version" call (GET /secrets/{name} returns the value), so list
        # the versions' properties (values never listed) and take the newest: created last, and among versions
        # created in the same second, listed last.
        self._count("get_secret_version")
        try:
            versions = list(self._client.list_properties_of_secret_versions(name))
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise classify(exc, service=SERVICE, operation="get_secret_version") from None
        if not versions:
            return None
        newest = max(enumerate(versions), key=lambda iv: (iv[1].created_on.timestamp() if iv[1].created_on else 0,
                                                          iv[0]))
        return newest[1].version

    def delete_secret(self, name: str) -> bool:
        self._count("delete_secret")
        try:
            poller = self._client.begin_delete_secret(name, _polling_interval=self.polling_interval)
            self._wait(poller, "delete_secret")
        except ResourceNotFoundError:
            return False
        except TransientError:
            raise
        except Exception as exc:
            raise classify(exc, service=SERVICE, operation="delete_secret") from None
        return True

    def recover_deleted_secret(self, name: str) -> bool:
        self._count("recover_deleted_secret")
        try:
            poller = self._client.begin_recover_deleted_secret(name, _polling_interval=self.polling_interval)
            self._wait(poller, "recover_deleted_secret")
        except ResourceNotFoundError:
            return False
        except TransientError:
            raise
        except Exception as exc:
            raise classify(exc, service=SERVICE, operation="recover_deleted_secret") from None
        return True

    def purge_deleted_secret(self, name: str) -> bool:
        self._count("purge_deleted_secret")
        try:
            self._client.purge_deleted_secret(name)
        except ResourceNotFoundError:
            return False
        except Exception as exc:  # with purge protection on: 403, permanent
            raise classify(exc, service=SERVICE, operation="purge_deleted_secret") from None
        return True

    def _wait(self, poller, operation: str) -> None:
        poller.wait(timeout=self.polling_timeout)
        if not poller.done():
            raise TransientError(f"not finished after {self.polling_timeout:g} s; the next attempt looks again",
                                 service=SERVICE, operation=operation)

    def close(self) -> None:
        self._client.close()
