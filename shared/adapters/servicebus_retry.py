"""Schedules retry copies of a message on its own queue with azure-servicebus.

The Functions Service Bus binding cannot delay a message, and `@app.retry` is not supported for Service Bus
triggers, so (as in Microsoft's own sample) the trigger completes the message after this adapter has scheduled a
copy. The copy keeps body, session id, correlation id, content type and subject, so ordering per session and
tracing survive the retry.
"""
from __future__ import annotations

import datetime as dt
import threading

from ..domain.errors import TransientError
from ..service_layer.ports import RetryScheduler
from ..settings import ServiceBusConnection
from .servicebus_client import service_bus_client
from .telemetry import external_call


class ServiceBusRetryScheduler(RetryScheduler):
    def __init__(self, queue: str, connection: ServiceBusConnection, *, default_client_id: str | None = None):
        self.queue = queue
        self._connection = connection
        self._default_client_id = default_client_id
        self._lock = threading.Lock()  # a ServiceBusSender is not thread-safe
        self._client = None
        self._sender = None

    @classmethod
    def from_settings(cls, settings) -> "ServiceBusRetryScheduler":
        """The trigger's own queue and connection, as the Functions host resolves them."""
        return cls(settings.customer_events_queue, settings.service_bus, default_client_id=settings.azure_client_id)

    def _get_sender(self):
        if self._sender is None:
            self._client = service_bus_client(self._connection, default_client_id=self._default_client_id)
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
        with self._lock, external_call("servicebus", "schedule_messages"):
            try:
                self._get_sender().schedule_messages(copy, when)
            except ServiceBusError as exc:
                self._reset()
                raise TransientError(f"could not schedule the retry: {type(exc).__name__}",
                                     service="servicebus", operation="schedule_messages") from None
