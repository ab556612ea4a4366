"""A ``ServiceBusClient`` for a resolved connection setting: the app, the ops tool and devtools open the namespace
the same way (a connection string, or the namespace with the identity the connection names)."""
from __future__ import annotations

import threading
from typing import Any

from ..domain.errors import TransientError
from ..settings import ServiceBusConnection


def portal_delivery_count(sdk_delivery_count: int | None) -> int:
    """A message's delivery count as the portal's Service Bus Explorer, .NET and the Functions host's log show it:
    the first delivery is 1. The Python SDK passes on the AMQP header, which counts the failed deliveries before the
    current one (0 on the first; an absent header is 0 too), so this is that number plus one. Every count the tools
    print (`make show`, `opstool list`/`show`/`export`) is this one."""
    return (sdk_delivery_count or 0) + 1


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


class SharedSender:
    """One lazily opened sender (queue or topic) for all the threads of a process. A ServiceBusSender is not
    thread-safe, so every use holds the lock; after a Service Bus error the link is dropped and the next use opens a
    fresh one (a broken link does not heal), and the error becomes a TransientError naming the operation."""

    def __init__(self, connection: ServiceBusConnection, open_sender, *, default_client_id: str | None = None):
        self._connection = connection
        self._open_sender = open_sender  # client -> sender
        self._default_client_id = default_client_id
        self._lock = threading.Lock()
        self._client = None
        self._sender = None

    def use(self, fn, *, operation: str, failure: str) -> None:
        """``fn(sender)`` under the lock, in one ``servicebus.<operation>`` call span."""
        from azure.servicebus.exceptions import ServiceBusError

        from .telemetry import external_call

        with self._lock, external_call("servicebus", operation):
            try:
                if self._sender is None:
                    self._client = service_bus_client(self._connection, default_client_id=self._default_client_id)
                    self._sender = self._open_sender(self._client)
                fn(self._sender)
            except ServiceBusError as exc:
                self._reset()
                raise TransientError(f"{failure}: {type(exc).__name__}", service="servicebus",
                                     operation=operation) from None

    def open(self, *, operation: str, failure: str) -> None:
        """Open the link now, so that the first send does not wait for it (a sender opens on entering its
        context, which is otherwise the first send)."""
        self.use(lambda sender: sender.__enter__(), operation=operation, failure=failure)

    def close(self) -> None:
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        for part in (self._sender, self._client):
            try:
                if part is not None:
                    part.close()
            except Exception:  # noqa: BLE001 - a broken link is why we are resetting; nothing more to do with it
                pass
        self._sender = self._client = None
