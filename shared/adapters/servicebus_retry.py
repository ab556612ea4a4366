"""Schedules retry copies of a message on its own queue with azure-servicebus.

The Functions Service Bus binding cannot delay a message, and `@app.retry` is not supported for Service Bus
triggers, so (as in Microsoft's own sample) the trigger completes the message after this adapter has scheduled a
copy. The copy keeps body, session id, correlation id, content type and subject, so ordering per session and
tracing survive the retry.
"""
from __future__ import annotations

import datetime as dt
import threading
from typing import Mapping

from ..domain.errors import TransientError
from ..service_layer.ports import RetryScheduler


class ServiceBusRetryScheduler(RetryScheduler):
    def __init__(self, queue: str, *, connection_string: str | None = None,
                 fully_qualified_namespace: str | None = None, credential=None):
        if not (connection_string or fully_qualified_namespace):
            raise ValueError("a connection string or a fully qualified namespace is required")
        self.queue = queue
        self._connection_string = connection_string
        self._namespace = fully_qualified_namespace
        self._credential = credential
        self._lock = threading.Lock()  # a ServiceBusSender is not thread-safe
        self._client = None
        self._sender = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str], connection: str = "ServiceBusConnection",
                         credential_factory=None) -> "ServiceBusRetryScheduler":
        """Reads the trigger's own connection setting, as the Functions host does: ``<connection>`` is a connection
        string, or ``<connection>__fullyQualifiedNamespace`` (+ ``__clientId``) means identity-based access."""
        queue = env.get("CUSTOMER_EVENTS_QUEUE") or "customer-events"
        if env.get(connection):
            return cls(queue, connection_string=env[connection])
        namespace = env.get(f"{connection}__fullyQualifiedNamespace")
        if not namespace:
            raise ValueError(f"neither {connection} nor {connection}__fullyQualifiedNamespace is set")
        from .credentials import get_credential
        client_id = env.get(f"{connection}__clientId") or env.get("AZURE_CLIENT_ID") or None
        return cls(queue, fully_qualified_namespace=namespace,
                   credential=(credential_factory or get_credential)(client_id))

    def _get_sender(self):
        if self._sender is None:
            from azure.servicebus import ServiceBusClient
            if self._connection_string:
                self._client = ServiceBusClient.from_connection_string(self._connection_string)
            else:
                self._client = ServiceBusClient(self._namespace, self._credential)
            self._sender = self._client.get_queue_sender(self.queue)
        return self._sender

    def _reset(self) -> None:
        for part in (self._sender, self._client):
            try:
                if part is not None:
                    part.close()
            except Exception:  # a broken link is why we are resetting; nothing more to do with it
                pass
        self._sender = self._client = None

    def schedule_retry(self, message, *, delay_seconds: float, properties: dict, message_id: str) -> None:
        from azure.servicebus import ServiceBusMessage
        from azure.servicebus.exceptions import ServiceBusError

        app_props = {k: v for k, v in (message.application_properties or {}).items()
                     if isinstance(k, str)}
        app_props.update(properties)
        copy = ServiceBusMessage(
            message.body, message_id=message_id, session_id=message.session_id,
            correlation_id=message.correlation_id, content_type=message.content_type, subject=message.subject,
            application_properties=app_props)
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=delay_seconds)
        with self._lock:
            try:
                self._get_sender().schedule_messages(copy, when)
            except ServiceBusError as exc:
                self._reset()
                raise TransientError(f"could not schedule the retry: {type(exc).__name__}",
                                     service="servicebus", operation="schedule_messages") from None
