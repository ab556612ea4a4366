"""A ``ServiceBusClient`` for a resolved connection setting: the app, the ops tool and devtools open the namespace
the same way (a connection string, or the namespace with the identity the connection names)."""
from __future__ import annotations

from typing import Any

from ..settings import ServiceBusConnection


def service_bus_client(connection: ServiceBusConnection, *, default_client_id: str | None = None,
                       **client_options: Any):
    """``client_options`` go to the client as they are (e.g. ``retry_total``). An identity-based connection uses
    its ``__clientId``, else ``default_client_id`` (AZURE_CLIENT_ID), else the system-assigned identity."""
    from azure.servicebus import ServiceBusClient

    if connection.connection_string:
        return ServiceBusClient.from_connection_string(connection.connection_string, **client_options)
    from .credentials import get_credential
    credential = get_credential(connection.client_id or default_client_id)
    return ServiceBusClient(connection.fully_qualified_namespace, credential, **client_options)
