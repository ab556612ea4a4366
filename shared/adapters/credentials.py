"""The app's one Azure credential, shared by the Key Vault, API Management and Table Storage clients.

One ``DefaultAzureCredential`` per process (per user-assigned identity), created on first use: each credential keeps
its own token cache, so sharing it means one token request per resource per hour instead of one per client.
In Azure it resolves to the managed identity (``AZURE_CLIENT_ID`` picks a user-assigned one); locally the same code
path runs against the managed-identity stand-in (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``).
"""
from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_credentials: dict[str | None, Any] = {}


def get_credential(client_id: str | None = None) -> Any:
    """The shared ``azure.identity.DefaultAzureCredential`` (a ``TokenCredential``)."""
    credential = _credentials.get(client_id)
    if credential is not None:
        return credential
    with _lock:
        credential = _credentials.get(client_id)
        if credential is None:
            from azure.identity import DefaultAzureCredential  # the SDK is imported on first use (cold start)

            kwargs = {"managed_identity_client_id": client_id} if client_id else {}
            credential = DefaultAzureCredential(**kwargs)
            _credentials[client_id] = credential
        return credential


def reset_credentials() -> None:
    """Forget the shared credentials (tests that change the identity environment between cases)."""
    with _lock:
        for credential in _credentials.values():
            try:
                credential.close()
            except Exception:  # closing is best effort: the credential is dropped either way
                pass
        _credentials.clear()
