"""Wiring: settings -> adapters -> ProvisioningService, once per process.

Cold start: importing this module imports no Azure or Auth0 SDK (nor the adapter modules that do). The Functions
host imports ``function_app.py`` (and so this module) to index the functions before any message arrives; the SDKs,
the credential and the clients are built by the first :func:`get_service` call, then reused by every invocation the
process serves.
"""
from __future__ import annotations

import os
import socket
import threading
import uuid
from typing import TYPE_CHECKING

from .adapters.settings import Settings
from .domain.profiles import load_profiles

if TYPE_CHECKING:  # for readers and type checkers only: not imported at run time
    from .service_layer.provisioning import ProvisioningService

_lock = threading.Lock()
_service: "ProvisioningService | None" = None


def default_worker_id() -> str:
    """Names this process as the owner of its claims: instance (App Service sets WEBSITE_INSTANCE_ID), pid, and a
    random tail so that a restarted process never mistakes an older claim for its own."""
    instance = os.environ.get("WEBSITE_INSTANCE_ID", "")[:12] or socket.gethostname()
    return f"{instance}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def build_service(settings: Settings, worker_id: str | None = None) -> "ProvisioningService":
    """A ProvisioningService over the real adapters, configured by ``settings``."""
    from .adapters.apim_gateway import ApimGateway
    from .adapters.auth0_identity import Auth0IdentityProvider
    from .adapters.credentials import get_credential
    from .adapters.keyvault_secrets import KeyVaultSecretStore
    from .adapters.table_ledger import TableLedger
    from .service_layer.provisioning import ProvisioningOptions, ProvisioningService

    profiles = load_profiles(settings.client_profiles_path, env=settings.environ)
    credential = get_credential(settings.azure_client_id)
    identity = Auth0IdentityProvider.from_settings(settings)
    secrets = KeyVaultSecretStore.from_settings(settings, credential)
    gateway = ApimGateway.from_settings(settings, credential)
    ledger = TableLedger.from_settings(settings, credential)
    options = ProvisioningOptions(
        auth0_domain=settings.auth0_domain,
        purge_deleted_secrets=settings.keyvault_purge_deleted,
        claim_ttl=settings.claim_ttl_seconds,
        apim_client_registration_endpoint=settings.apim_client_registration_endpoint,
    )
    return ProvisioningService(identity=identity, secrets=secrets, gateway=gateway, ledger=ledger,
                               profiles=profiles, options=options, worker_id=worker_id or default_worker_id())


def get_service() -> "ProvisioningService":
    """The process's service, built from the environment on first use (settings errors surface here, listed)."""
    global _service
    service = _service
    if service is not None:
        return service
    with _lock:
        if _service is None:
            _service = build_service(Settings.from_env())
        return _service


def reset_service() -> None:
    """Forget the process's service (tests that change the environment)."""
    global _service
    with _lock:
        _service = None
